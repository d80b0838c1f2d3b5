/* How every benchmark runs its main(): an interrupted run still cleans up (the exit handlers, the
 * harness's among them, run on process.exit), and a failure ends the run with status 1. */
export function runBenchmark(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(130));
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
