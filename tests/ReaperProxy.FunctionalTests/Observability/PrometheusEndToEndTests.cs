using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary>A real Prometheus scrapes the proxy's admin port; the reap shows up through its query API.</summary>
public sealed class PrometheusEndToEndTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_reaped_silent_client_shows_in_prometheus_and_active_returns_to_zero()
    {
        var prometheusPath = ExternalTool.Require("prometheus");
        var heartbeat = new Relay.Heartbeat(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

        // The real executable, one proxy per process as deployed: OpenTelemetry subscribes to meters by
        // name, so an in-process proxy would also export what other proxies in the test process count.
        var probe = new BackendProbe();
        await using var backend = await TestBackend.StartAsync(new TestBackendOptions { Map = probe.Map, Output = output });
        var configDir = Directory.CreateTempSubdirectory("reaper-e2e-");
        var configFile = Path.Combine(configDir.FullName, "reaper.json");
        File.WriteAllText(configFile, ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Heartbeat:PingInterval", "1s")
            .Set("Reaper:Heartbeat:PongTimeout", "1s")
            .Set("Reaper:Heartbeat:CloseTimeout", "1s")
            .ToJson());
        await using var proxy = await ProxyProcess.StartAsync(configFile);
        Uri Ws(string path) => new UriBuilder(new Uri(proxy.PublicUri, path.TrimStart('/'))) { Scheme = "ws" }.Uri;

        var dir = Directory.CreateTempSubdirectory("reaper-prometheus-");
        var port = ExternalTool.FreeLoopbackPort();
        var admin = proxy.AdminUri;
        File.WriteAllText(Path.Combine(dir.FullName, "prometheus.yml"), $"""
            global:
              scrape_interval: 2s
              scrape_timeout: 2s
            scrape_configs:
              - job_name: reaperproxy
                metrics_path: /metrics
                static_configs:
                  - targets: ["127.0.0.1:{admin.Port}"]
            """);
        using var prometheus = Process.Start(new ProcessStartInfo(prometheusPath,
            $"--config.file={dir.FullName}/prometheus.yml --storage.tsdb.path={dir.FullName}/data " +
            $"--web.listen-address=127.0.0.1:{port} --log.level=warn")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        prometheus.OutputDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine("[prometheus] " + e.Data); };
        prometheus.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine("[prometheus] " + e.Data); };
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(5) };
            await Eventually.UntilAsync(async () => await Query(http, "up{job=\"reaperproxy\"}") == 1, "Prometheus to scrape the admin port", TimeSpan.FromSeconds(60));

            // A live client (a receive pending, so it answers pings) shows up as active...
            await using var live = await TestWebSocket.ConnectHttp1Async(Ws("/echo"));
            var liveBuffer = new byte[64];
            var liveReceive = live.Socket.ReceiveAsync(liveBuffer, CancellationToken.None);
            await Eventually.UntilAsync(async () => await Query(http, "sum(reaper_connections_active)") == 1,
                "reaper_connections_active to show the live connection", TimeSpan.FromSeconds(30));

            // ...then a raw client completes the upgrade and answers nothing: it is reaped.
            await using (var silent = await RawWebSocket.ConnectAsync(Ws("/record")))
            {
                await probe.Outcome.WaitAsync(heartbeat.Deadline + TimeSpan.FromSeconds(15));
            }

            await Eventually.UntilAsync(
                async () => await Query(http, "sum(reaper_connections_reaped_total{leg=\"client\",reason=\"pong_timeout\"})") >= 1,
                "reaper_connections_reaped_total{leg=client,reason=pong_timeout} to rise", TimeSpan.FromSeconds(60));
            Assert.True(await Query(http, "sum(reaper_connections_closed_total{reason=\"client_dead\"})") >= 1);

            // The live one was never reaped; once it closes, active is back to 0.
            await live.SendTextAsync("bye");
            Assert.Equal(3, (await liveReceive.WaitAsync(TimeSpan.FromSeconds(10))).Count);
            await live.CloseAsync();
            await Eventually.UntilAsync(
                async () => await Query(http, "sum(reaper_connections_active)") == 0,
                "reaper_connections_active to return to 0", TimeSpan.FromSeconds(60));
            Assert.Equal(1, await Query(http, "sum(reaper_connections_reaped_total)"));
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            dir.Delete(recursive: true);
            configDir.Delete(recursive: true);
        }
    }

    // The value of an instant query with one result; NaN when it has none (yet).
    private static async Task<double> Query(HttpClient http, string promql)
    {
        try
        {
            using var doc = await http.GetFromJsonAsync<JsonDocument>("api/v1/query?query=" + Uri.EscapeDataString(promql));
            var results = doc!.RootElement.GetProperty("data").GetProperty("result");
            return results.GetArrayLength() == 0
                ? double.NaN
                : double.Parse(results[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
        }
        catch (HttpRequestException)
        {
            return double.NaN;
        }
    }
}
