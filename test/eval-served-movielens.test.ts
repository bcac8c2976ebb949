import { describeEvalServed } from "./helpers/eval-served.js";

describeEvalServed("MovieLens");
