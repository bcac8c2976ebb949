import { describeChaos } from "./helpers/chaos.js";

describeChaos([["blend", "off"]]);
