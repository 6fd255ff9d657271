/** The markdown report of a bench run: a table of every figure, then a bar chart per comparison. */
import type { Metric } from "./metric.js";

const BAR_WIDTH = 40;

export function renderReport(
  machine: Record<string, unknown>,
  metrics: Metric[],
  failures: string[],
): string {
  const lines = [
    "# Strata benchmark report",
    "",
    `Machine: ${machine.cpus} × ${machine.cpu_model}, ${machine.memory_gb} GiB, ${machine.platform}, Node ${machine.node}; ${machine.date}${machine.quick ? " (quick run)" : ""}.`,
    "Medians; peers measured in the same run. The machine is shared: compare ratios, not absolute figures.",
    "",
    "| metric | value | peer | peer value | ratio | target | conditions |",
    "|---|---:|---|---:|---:|---|---|",
    ...metrics.map(
      (m) =>
        `| ${m.name} | ${fmt(m.value)} ${m.unit} | ${m.peer ?? ""} | ${m.peer_value === undefined ? "" : fmt(m.peer_value)} | ${m.ratio ?? ""} | ${m.target ?? ""} | ${m.conditions} |`,
    ),
    "",
  ];
  for (const m of metrics.filter((x) => x.peer_value !== undefined)) {
    const max = Math.max(m.value, m.peer_value!);
    lines.push(`### ${m.name} (${m.unit})`, "", "```");
    lines.push(bar("strata", m.value, max), bar(m.peer!, m.peer_value!, max), "```", "");
  }
  if (failures.length > 0) lines.push("## Suites that failed", "", "```", ...failures, "```", "");
  return lines.join("\n");
}

function bar(label: string, value: number, max: number): string {
  const n = max > 0 ? Math.round((value / max) * BAR_WIDTH) : 0;
  return `${label.slice(0, 28).padEnd(28)} ${"█".repeat(n)}${" ".repeat(BAR_WIDTH - n)} ${fmt(value)}`;
}

function fmt(x: number): string {
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString("en-US") : String(x);
}
