import { describeChaos } from "./helpers/chaos.js";

// The design ranking's runs share one uninterrupted run; the blend's are in chaos-blend.
describeChaos([
  ["design", "off"],
  ["design", "on"],
]);
