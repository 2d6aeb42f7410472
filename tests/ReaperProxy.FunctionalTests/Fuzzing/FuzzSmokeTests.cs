using System.Text.RegularExpressions;
using ReaperProxy.FunctionalTests.Observability;
using ReaperProxy.FunctionalTests.Performance;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Fuzzing;

/// <summary>
/// The short fuzzing pass CI runs (tools/fuzz/run.sh, issue 13): about 30 seconds of afl-fuzz on each
/// target, side by side, from the harness this build already made (so no publish here), failing on any
/// crash or hang. Alone, after the parallel tests: it keeps both cores busy for its half minute.
/// </summary>
[Collection(PerformanceSmokeCollection.Name)]
public sealed partial class FuzzSmokeTests(ITestOutputHelper output)
{
    private const int Seconds = 30;

    [Fact]
    public async Task Half_a_minute_of_afl_on_each_target_finds_no_crash_and_no_hang()
    {
        // Missing afl++ fails the test rather than skip it; FuzzCorpusTests replays the corpus without it.
        ExternalTool.Require("afl-fuzz", "afl++");
        var root = ExternalTool.RepositoryRoot();
        var build = HarnessBuild(root);
        var outDir = Directory.CreateTempSubdirectory("reaper-fuzz-smoke-");
        try
        {
            var runs = new[] { "scanner", "relay" }.Select(target => (target, run: ExternalTool.RunAsync(
                "bash", $"tools/fuzz/run.sh --seconds {Seconds} --target {target} --from {build} --out {Path.Combine(outDir.FullName, target)}",
                root, TimeSpan.FromSeconds(Seconds + 120)))).ToList();
            foreach (var (target, run) in runs)
            {
                var (exitCode, text) = await run;
                output.WriteLine($"--- {target}");
                output.WriteLine(text);
                Assert.True(exitCode == 0, $"run.sh --target {target} exited {exitCode} (1: crashes or hangs, 2: setup):\n{text}");
                var executions = ExecutionsLine().Match(text);
                Assert.True(executions.Success && long.Parse(executions.Groups[1].Value) > 0, $"{target}: no executions reported:\n{text}");
                Assert.Matches(@"crashes: +0\n", text);
                Assert.Matches(@"hangs: +0\n", text);
            }
        }
        finally
        {
            outDir.Delete(recursive: true);
        }
    }

    // The harness as this test run built it (the project reference builds it): src/ReaperProxy.Fuzz/bin/<Configuration>/net10.0.
    private static string HarnessBuild(string root)
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var build = Path.Combine(root, "src", "ReaperProxy.Fuzz", "bin", here.Parent!.Name, here.Name);
        Assert.True(File.Exists(Path.Combine(build, "ReaperProxy.Fuzz.dll")), $"the fuzzing harness is not built at {build}");
        return build;
    }

    [GeneratedRegex(@"executions: +(\d+)")]
    private static partial Regex ExecutionsLine();
}
