using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>The short heartbeat intervals the relay tests run with.</summary>
public sealed record Heartbeat(TimeSpan PingInterval, TimeSpan PongTimeout, TimeSpan CloseTimeout)
{
    public static readonly Heartbeat Fast = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600));

    /// <summary>The latest a dead leg may be reaped: PingInterval + PongTimeout + 25% of the smaller.</summary>
    public TimeSpan Deadline => PingInterval + PongTimeout + (PingInterval < PongTimeout ? PingInterval : PongTimeout) / 4;

    /// <summary>Generous slack for a loaded 2-core CI machine; the lower bounds stay tight.</summary>
    public static readonly TimeSpan Slack = TimeSpan.FromSeconds(1.5);

    public static string Format(TimeSpan t) => $"{(long)t.TotalMilliseconds}ms";
}

/// <summary>A proxy in front of a test backend with the relay endpoints, under one heartbeat policy.</summary>
public sealed class RelayFixture : IAsyncDisposable
{
    private RelayFixture(TestBackend backend, TestProxy proxy, BackendProbe probe, RecordingLoggerProvider logs, ProxyConfig config)
    {
        Backend = backend;
        Proxy = proxy;
        Probe = probe;
        Logs = logs;
        Config = config;
    }

    public TestBackend Backend { get; }

    public TestProxy Proxy { get; }

    public BackendProbe Probe { get; }

    public RecordingLoggerProvider Logs { get; }

    public ProxyConfig Config { get; }

    // output: where the proxy's and the backend's logs go; null for nowhere (a fixture shared by a test class).
    public static async Task<RelayFixture> StartAsync(
        ITestOutputHelper? output,
        Heartbeat heartbeat,
        string mode = "Enforce",
        string legs = "Both",
        BackendProtocol backendProtocol = BackendProtocol.Http1,
        bool h2cClient = false,
        Action<ProxyConfig>? configure = null)
    {
        var probe = new BackendProbe();
        var backend = await TestBackend.StartAsync(new TestBackendOptions { Protocol = backendProtocol, Map = probe.Map, Output = output });
        var config = new ProxyConfig()
            .Cluster("backend", backend.BaseUri, http2Only: backendProtocol == BackendProtocol.H2c)
            .Route("all", "{**catch-all}", "backend")
            .Set("Reaper:Heartbeat:Mode", mode)
            .Set("Reaper:Heartbeat:Legs", legs)
            .Set("Reaper:Heartbeat:PingInterval", Heartbeat.Format(heartbeat.PingInterval))
            .Set("Reaper:Heartbeat:PongTimeout", Heartbeat.Format(heartbeat.PongTimeout))
            .Set("Reaper:Heartbeat:CloseTimeout", Heartbeat.Format(heartbeat.CloseTimeout));
        configure?.Invoke(config);
        var logs = new RecordingLoggerProvider();
        var proxy = await TestProxy.StartAsync(config, new TestProxyOptions
        {
            H2cEndpoint = h2cClient,
            Output = output,
            Configure = builder => builder.Logging.AddProvider(logs),
        });
        return new RelayFixture(backend, proxy, probe, logs, config);
    }

    public Uri Ws(string path, bool h2c = false) => Proxy.WebSocketUri(path, h2c);

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Backend.DisposeAsync();
    }
}

public static class WebSocketTestExtensions
{
    /// <summary>Receives until a Close arrives; returns its status (null if the connection just ended).</summary>
    public static async Task<(WebSocketCloseStatus? Status, string? Description)> ReceiveCloseAsync(this ClientWebSocket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return (result.CloseStatus, result.CloseStatusDescription);
                }
            }
        }
        catch (WebSocketException)
        {
            return (null, null);
        }
    }
}
