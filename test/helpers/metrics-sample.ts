/** One sample of a Prometheus text exposition, by its name and labels as printed (`name{a="b"}`); undefined when absent. */
export function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
