using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Performance;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Churn;

/// <summary>
/// 10,000 connect/upgrade/end cycles through a real proxy process, of every kind the load harness's churn
/// knows (closing handshakes, client aborts, a client RST in the middle of a frame, a backend that aborts
/// mid-message, HTTP/2 WebSockets closed and reset with RST_STREAM), from four loopback source addresses.
/// Afterwards the proxy's own <c>/metrics</c> says nothing is active, and its open files, threads and
/// memory are back near what they were after a warm-up (issue 13, fault suite). Alone: the churn fills
/// both cores.
/// </summary>
[Collection(PerformanceSmokeCollection.Name)]
public sealed class ChurnLeakTests(ITestOutputHelper output) : IDisposable
{
    private const int Cycles = 10_000;
    private const string Mix = "close=1,abort=1,rst=1,backend-abort=1,h2-close=1,h2-reset=1";

    // The bounds "back near baseline": a leak of one descriptor, or of a connection's ~30 KiB, per cycle
    // would be 10,000 descriptors or ~300 MiB. Threads: the thread pool grows under load and retires idle
    // workers only after ~20 s, so some may still be there.
    private const int MaxExtraOpenFiles = 40;
    private const int MaxExtraThreads = 24;
    private const double MaxExtraRssMiB = 96;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-churn-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Ten_thousand_cycles_with_aborts_and_HTTP2_resets_leave_nothing_active_and_no_handles_threads_or_memory_behind()
    {
        var clock = Stopwatch.StartNew();
        var (backend, backendUri) = await LoadTestProcess.StartBackendAsync();
        await using var backendProcess = backend;

        // Two public endpoints, named so that Kestrel (which orders endpoints by name) reports HTTP/1.1 first.
        var file = Path.Combine(_dir.FullName, "reaper.json");
        File.WriteAllText(file, ProxyConfig.CatchAll(backendUri)
            .Set("Kestrel:Endpoints:a-http1:Url", "http://127.0.0.1:0").Set("Kestrel:Endpoints:a-http1:Protocols", "Http1")
            .Set("Kestrel:Endpoints:b-h2c:Url", "http://127.0.0.1:0").Set("Kestrel:Endpoints:b-h2c:Protocols", "Http2")
            .ToJson());
        await using var proxy = await ProxyProcess.StartAsync(file);
        Assert.Equal(2, proxy.PublicUris.Count);
        using var admin = TestClients.Http1(proxy.AdminUri);
        using (var h2 = TestClients.H2c(proxy.PublicUris[1]))
        {
            Assert.Equal(HttpVersion.Version20, (await h2.GetAsync("/stats")).Version);
        }

        string[] churn(int cycles) =>
        [
            "churn", "--target", Ws(proxy.PublicUris[0]), "--h2-target", Ws(proxy.PublicUris[1]), "--mix", Mix,
            "--max-connections", cycles.ToString(CultureInfo.InvariantCulture), "--concurrency", "16", "--duration", "240s",
            "--source", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5",
        ];

        // Warm-up: every code path run, the thread pool and the pools grown; then the baseline.
        var warmUp = await LoadTestProcess.RunAsync(churn(600), TimeSpan.FromMinutes(2));
        Assert.True(warmUp.ExitCode == 0, $"warm-up churn exited {warmUp.ExitCode}:\n{warmUp.StandardOutput}\n{warmUp.StandardError}");
        await ActiveIsZeroAsync(admin);
        var baseline = ProcStats.Read(proxy.Id);
        output.WriteLine($"after a warm-up of 600 cycles ({clock.Elapsed.TotalSeconds:F1} s): {baseline}");

        var run = Stopwatch.StartNew();
        var (exitCode, stdout, stderr) = await LoadTestProcess.RunAsync(churn(Cycles), TimeSpan.FromMinutes(4));
        output.WriteLine($"churn ({run.Elapsed.TotalSeconds:F1} s): {stdout}");
        Assert.True(exitCode == 0, $"churn exited {exitCode}:\n{stdout}\n{stderr}");
        using var result = JsonDocument.Parse(stdout);
        Assert.Equal(Cycles, result.RootElement.GetProperty("upgrades").GetInt64());
        Assert.Equal(0, result.RootElement.GetProperty("errors").GetInt64());
        var byKind = result.RootElement.GetProperty("byKind");
        foreach (var kind in new[] { "close", "abort", "rst", "backend-abort", "h2-close", "h2-reset" })
        {
            Assert.True(byKind.TryGetProperty(kind, out var n) && n.GetInt64() >= Cycles / 6, $"kind {kind}: {byKind}");
        }

        // Nothing active, every one of them counted as opened and as closed.
        await ActiveIsZeroAsync(admin);
        var metrics = await MetricsText.ScrapeAsync(admin);
        Assert.Equal(Cycles + 600, metrics.Sum("reaper_connections_opened_total"));
        Assert.Equal(Cycles + 600, metrics.Sum("reaper_connections_closed_total"));
        Assert.Equal(0, metrics.Sum("reaper_connections_reaped_total"));

        // Descriptors and threads back near the baseline (bounded wait: sockets and idle workers go
        // away shortly after the load); memory as it is once the load has settled.
        using var backendClient = TestClients.Http1(backendUri);
        var settled = ProcStats.Read(proxy.Id);
        var settle = Stopwatch.StartNew();
        while (settle.Elapsed < TimeSpan.FromSeconds(30) &&
               (settled.OpenFiles > baseline.OpenFiles + MaxExtraOpenFiles || settled.Threads > baseline.Threads + MaxExtraThreads))
        {
            await Task.Delay(500);
            settled = ProcStats.Read(proxy.Id);
        }

        output.WriteLine($"after {Cycles} cycles, settled for {settle.Elapsed.TotalSeconds:F1} s: {settled}");
        output.WriteLine($"change from the baseline: {settled.OpenFiles - baseline.OpenFiles:+0;-0;0} open files (bound +{MaxExtraOpenFiles}), " +
                         $"{settled.Threads - baseline.Threads:+0;-0;0} threads (bound +{MaxExtraThreads}), {settled.RssMiB - baseline.RssMiB:+0.0;-0.0;0} MiB RSS (bound +{MaxExtraRssMiB}); " +
                         $"backend: {await backendClient.GetStringAsync("/stats")}; test {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(settled.OpenFiles <= baseline.OpenFiles + MaxExtraOpenFiles, $"open files: {baseline.OpenFiles} after the warm-up, {settled.OpenFiles} after the churn");
        Assert.True(settled.Threads <= baseline.Threads + MaxExtraThreads, $"threads: {baseline.Threads} after the warm-up, {settled.Threads} after the churn");
        Assert.True(settled.RssMiB <= baseline.RssMiB + MaxExtraRssMiB, $"RSS: {baseline.RssMiB:F1} MiB after the warm-up, {settled.RssMiB:F1} MiB after the churn");
    }

    private static string Ws(Uri http) => new UriBuilder(new Uri(http, "/ws")) { Scheme = "ws" }.Uri.ToString();

    private static Task ActiveIsZeroAsync(HttpClient admin) =>
        Eventually.UntilAsync(async () => (await MetricsText.ScrapeAsync(admin)).Sum("reaper_connections_active") == 0,
            "reaper_connections_active to return to 0", TimeSpan.FromSeconds(30));

    private sealed record ProcStats(int OpenFiles, int Threads, double RssMiB)
    {
        public static ProcStats Read(int pid)
        {
            var status = File.ReadAllLines($"/proc/{pid}/status");
            double Field(string name) => double.Parse(status.First(l => l.StartsWith(name, StringComparison.Ordinal))[name.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            return new ProcStats(Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, (int)Field("Threads:"), Math.Round(Field("VmRSS:") / 1024, 1));
        }

        public override string ToString() => $"{OpenFiles} open files, {Threads} threads, RSS {RssMiB:F1} MiB";
    }
}
