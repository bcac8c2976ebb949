import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { deployDir, filesUnder, read } from "./helpers/deploy.js";

/**
 * Every YAML file in deploy/ parses cleanly: a tool that reads it (docker-compose, kubectl,
 * Prometheus, Grafana) would refuse it, and the other deploy tests would check a partial reading.
 */

describe("deploy/: every YAML file", () => {
  const files = filesUnder(deployDir, (n) => /\.ya?ml$/.test(n));

  it("there are YAML files to check", () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  it.each(files)("%s parses without errors or warnings", (file) => {
    const docs = parseAllDocuments(read(file), { merge: true });
    expect(Array.isArray(docs), `${file} holds documents`).toBe(true);
    for (const doc of Array.isArray(docs) ? docs : []) {
      expect(doc.errors.map(String)).toEqual([]);
      expect(doc.warnings.map(String)).toEqual([]);
      expect(doc.toJS(), `${file} has content`).toBeTruthy();
    }
  });
});
