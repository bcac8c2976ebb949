import { describeEvalServed } from "./helpers/eval-served.js";

describeEvalServed("REES46");
