// The hand-written declarations (src/index.d.ts) compile, and accept the old system's calls: tsc checks
// test/types/usage.ts, which uses every part of the API and expects the errors it must report.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const here = fileURLToPath(new URL(".", import.meta.url));

test("the type declarations compile and type the old system's calls", () => {
  const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
  const run = spawnSync(process.execPath, [tsc, "-p", `${here}types/tsconfig.json`], { encoding: "utf8" });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
});
