// Room for DESIGN §7's online quality and drift panels, which arrive with that work.
import { h, placeholder } from "./dom.js";

export function qualityPage(root) {
  root.append(
    h("h1", {}, "Quality and drift"),
    h(
      "p",
      { class: "sub" },
      "How good the recommendations are, and whether the traffic drifts (DESIGN §7).",
    ),
    h(
      "div",
      { class: "grid g2" },
      placeholder(
        "Prequential hit rate",
        "Was a purchased item in that user's top 10 just before? Per source, for the blend and per A/B arm.",
      ),
      placeholder(
        "Drift",
        "Population stability index of the category mix, event-type mix and item popularity: last hour against the trailing day.",
      ),
      placeholder(
        "Models",
        "Each trained model's version, training time, data position and offline metrics.",
      ),
      placeholder(
        "Offline evaluation",
        "HitRate@10, Recall@10, NDCG@10 and coverage from reco eval, per source.",
      ),
    ),
  );
}
