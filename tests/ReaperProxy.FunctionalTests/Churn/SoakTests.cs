using System.Text.Json;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Performance;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Churn;

/// <summary>
/// The one-minute soak (issue 13): the real command (<c>ReaperProxy.LoadTest soak</c>, what
/// tools/soak/run.sh runs for ten minutes) against the built proxy. It starts the proxy and a backend as
/// processes and judges everything itself; this checks its exit code and that its summary shows each
/// part of the load really ran. Alone: it loads both cores for a minute.
/// </summary>
[Collection(PerformanceSmokeCollection.Name)]
public sealed class SoakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task One_minute_soak_loses_nothing_reaps_only_the_silenced_and_each_within_its_deadline()
    {
        var outDir = Directory.CreateTempSubdirectory("reaper-soak-test-");
        try
        {
            // Its own ports (27640..27643), apart from run.sh's default 27300.
            var (exitCode, stdout, stderr) = await LoadTestProcess.RunAsync(
                ["soak", "--proxy-dll", ProxyProcess.DllPath, "--minutes", "1", "--port-base", "27640", "--out", outDir.FullName],
                TimeSpan.FromMinutes(4));
            output.WriteLine(stderr);
            Assert.True(exitCode == 0, $"soak exited {exitCode}:\n{stderr}\n{stdout}\nproxy log: {Tail(Path.Combine(outDir.FullName, "proxy.log"))}");

            using var result = JsonDocument.Parse(stdout);
            var root = result.RootElement;
            long Long(string name) => root.GetProperty(name).GetInt64();
            Assert.Empty(root.GetProperty("violations").EnumerateArray());
            Assert.Contains("result: PASS", stderr, StringComparison.Ordinal);

            // Each part of the load ran and was judged.
            Assert.True(Long("healthyMessages") > 1000, $"healthy echoes: {Long("healthyMessages")}");
            Assert.Equal(0, Long("lostOrReordered"));
            Assert.Equal(0, Long("corrupted"));
            Assert.Equal(0, Long("healthyDropped"));
            Assert.Equal(0, Long("idleDropped"));
            Assert.True(Long("silenced") >= 10, $"silenced clients: {Long("silenced")}");
            Assert.Equal(Long("silenced"), Long("silencedReaped"));
            Assert.True(root.GetProperty("reapMaxSeconds").GetDouble() <= root.GetProperty("reapBoundSeconds").GetDouble());
            Assert.True(Long("churnCycles") > 500, $"churn cycles: {Long("churnCycles")}");
            Assert.Equal(6, root.GetProperty("churnByKind").EnumerateObject().Count());
            Assert.Equal(0, Long("churnErrors"));
            Assert.True(Long("reloadsApplied") >= 3 && Long("reloadsRejected") >= 1, $"reloads: {Long("reloadsApplied")} applied, {Long("reloadsRejected")} rejected");
            Assert.Equal(0, root.GetProperty("proxyActiveAtEnd").GetDouble());
        }
        finally
        {
            outDir.Delete(recursive: true);
        }
    }

    private static string Tail(string path) => File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(30)) : "(none)";
}
