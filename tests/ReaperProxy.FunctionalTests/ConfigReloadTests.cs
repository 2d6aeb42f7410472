using System.Net;
using System.Net.WebSockets;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.Configuration;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests;

/// <summary>Live reloads of the watched config file, in-process (the file is re-read on demand, not by timer).</summary>
public class ConfigReloadTests(ITestOutputHelper output)
{
    public static TheoryData<string> BadFiles => [.. s_badFileCases.Keys];

    private static readonly Dictionary<string, Func<ProxyConfig, string>> s_badFileCases = new()
    {
        ["invalid JSON"] = c => c.ToJson()[..^2],
        ["empty file"] = _ => string.Empty,
        ["unknown Mode"] = c => c.Set("Reaper:Heartbeat:Mode", "Sometimes").ToJson(),
        ["zero duration"] = c => c.Set("Reaper:Heartbeat:PongTimeout", "0s").ToJson(),
        ["negative duration"] = c => c.Set("Reaper:Heartbeat:CloseTimeout", "-00:00:01").ToJson(),
        ["unknown policy"] = c => c.Route("hello", "/hello", "backend", policy: "missing").ToJson(),
        ["route without a cluster"] = c => c.Route("orphan", "/orphan", "x").Remove("ReverseProxy:Routes:orphan:ClusterId").ToJson(),
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task Bad_reload_keeps_the_last_good_routes_serving(string badFile)
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync(s_badFileCases[badFile](config.Clone())));

        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        var settings = proxy.Host.Proxy.Services.GetRequiredService<ReaperSettingsMonitor>().Current;
        Assert.Equal(HeartbeatPolicy.Default, settings.DefaultPolicy);
        Assert.Equal(["echo", "hello"], settings.RoutePolicies.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task An_open_WebSocket_stays_open_and_echoes_across_a_bad_reload()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { H2cEndpoint = true, Output = output });
        await using var http1 = await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));
        await using var http2 = await TestWebSocket.ConnectHttp2Async(proxy.WebSocketUri("/echo", h2c: true));
        Assert.Equal("before", await http1.EchoAsync("before"));
        Assert.Equal("before", await http2.EchoAsync("before"));

        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync("{ this is not JSON"));
        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync(config.Clone().Set("Reaper:Heartbeat:Mode", "Sometimes").ToJson()));

        Assert.Equal(WebSocketState.Open, http1.Socket.State);
        Assert.Equal(WebSocketState.Open, http2.Socket.State);
        Assert.Equal("after", await http1.EchoAsync("after"));
        Assert.Equal("after", await http2.EchoAsync("after"));
        Assert.Equal(2, backend.RequestsFor("/echo").Count);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await http1.CloseAsync());
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await http2.CloseAsync());
    }

    [Fact]
    public async Task A_good_reload_after_a_bad_one_is_applied_and_a_new_route_starts_working()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var reloads = new MetricCollector<long>(proxy.Host.Proxy.Services.GetRequiredService<IMeterFactory>(), "ReaperProxy", "reaper.config.reloads");
        using var client = TestClients.Http1(proxy.PublicUri);
        await using var socket = await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/post", new StringContent("x"))).StatusCode);

        var withPost = config.Clone().Route("post", "/post", "backend").Policy("fast", ("PingInterval", "2s")).Route("hello", "/hello", "backend", policy: "fast");
        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync(withPost.Clone().Set("Reaper:Policies:fast:PingInterval", "-2s").ToJson()));
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/post", new StringContent("x"))).StatusCode);

        Assert.Equal(ReloadOutcome.Applied, await proxy.ReloadAsync(withPost));

        using var response = await client.PostAsync("/post", new StringContent("the new route"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("the new route", await response.Content.ReadAsStringAsync());
        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        Assert.Equal("still here", await socket.EchoAsync("still here"));
        var settings = proxy.Host.Proxy.Services.GetRequiredService<ReaperSettingsMonitor>().Current;
        Assert.Equal(TimeSpan.FromSeconds(2), settings.PolicyForRoute("hello").PingInterval);
        await socket.CloseAsync();

        // Each outcome is counted: reaper_config_reloads_total{result="rejected"|"applied"}.
        Assert.Equal(["rejected", "applied"], reloads.GetMeasurementSnapshot().Select(m => (string?)m.Tags["result"]));
    }

    [Fact]
    public async Task A_good_reload_that_removes_a_route_stops_serving_it()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/hello")).StatusCode);

        Assert.Equal(ReloadOutcome.Applied, await proxy.ReloadAsync(config.Clone().Remove("ReverseProxy:Routes:hello")));

        await Eventually.UntilAsync(
            async () => (await client.GetAsync("/hello")).StatusCode == HttpStatusCode.NotFound,
            "the removed route to stop serving");
    }

    [Fact]
    public async Task Reload_outcomes_are_logged_with_the_file_and_the_problem()
    {
        var logs = new LogCapture(output);
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = logs });

        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync(config.Clone().Set("Reaper:Heartbeat:Legs", "Neither").ToJson()));
        Assert.Equal(ReloadOutcome.Applied, await proxy.ReloadAsync(config.Clone().Set("Reaper:Heartbeat:Legs", "Client")));

        Assert.Contains(logs.Lines, l => l.Contains($"Configuration reload of {proxy.ConfigFile} rejected (1 problem(s))", StringComparison.Ordinal)
                                        && l.Contains("Reaper:Heartbeat:Legs: 'Neither' is not one of", StringComparison.Ordinal));
        Assert.Contains(logs.Lines, l => l.Contains($"Configuration reloaded from {proxy.ConfigFile}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Each_reload_is_judged_once_a_bad_one_logs_one_rejection_and_counts_one()
    {
        var logs = new LogCapture(output);
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Config(backend);
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = logs });
        using var reloads = new MetricCollector<long>(proxy.Host.Proxy.Services.GetRequiredService<IMeterFactory>(), "ReaperProxy", "reaper.config.reloads");
        var monitor = proxy.Host.Proxy.Services.GetRequiredService<ReaperSettingsMonitor>();
        var published = 0;
        monitor.Changed += _ => Interlocked.Increment(ref published);

        Assert.Equal(ReloadOutcome.Rejected, await proxy.ReloadAsync(config.Clone().Set("Reaper:Heartbeat:Mode", "Sometimes").ToJson()));
        Assert.Equal(ReloadOutcome.Applied, await proxy.ReloadAsync(config.Clone().Set("Reaper:Heartbeat:PingInterval", "7s")));

        // One rejection path (event 1001), one line, the problem named once; no second judgement of its own.
        Assert.Single(logs.Lines, l => l.Contains("rejected", StringComparison.OrdinalIgnoreCase));
        Assert.Single(logs.Lines, l => l.Contains("Reaper:Heartbeat:Mode", StringComparison.Ordinal));
        Assert.Single(logs.Lines, l => l.Contains($"Configuration reloaded from {proxy.ConfigFile}", StringComparison.Ordinal));
        Assert.Equal(["rejected", "applied"], reloads.GetMeasurementSnapshot().Select(m => (string?)m.Tags["result"]));
        Assert.Equal(1, published);
        Assert.Equal(TimeSpan.FromSeconds(7), monitor.Current.DefaultPolicy.PingInterval);
    }

    private static ProxyConfig Config(TestBackend backend) =>
        new ProxyConfig()
            .Cluster("backend", backend.BaseUri)
            .Route("hello", "/hello", "backend")
            .Route("echo", "/echo", "backend");

    /// <summary>Keeps the proxy's log lines for assertions and still shows them in the test output.</summary>
    private sealed class LogCapture(ITestOutputHelper inner) : ITestOutputHelper
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public void WriteLine(string message)
        {
            lock (_lines)
            {
                _lines.Add(message);
            }

            inner.WriteLine(message);
        }

        public void WriteLine(string format, params object[] args) => WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args));
    }
}
