using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// Graceful drain: on shutdown every WebSocket gets Close 1001 "proxy shutting down" on both legs, at a
/// moment spread over <c>Reaper:Drain:Period</c>; new WebSockets get 503 with Retry-After meanwhile; the
/// proxy stops once the closing handshakes are done, within Period + CloseTimeout and a margin.
/// </summary>
public sealed class DrainTests(ITestOutputHelper output)
{
    private const int Clients = 10;
    private static readonly TimeSpan s_period = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan s_closeTimeout = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Shutdown_closes_every_WebSocket_with_1001_spread_over_the_period_refuses_new_ones_and_stops_in_time()
    {
        var backendCloses = new ConcurrentQueue<(WebSocketCloseStatus? Status, string? Description)>();
        await using var backend = await TestBackend.StartAsync(new() { Output = output, Map = app => MapRecorder(app, backendCloses) });
        var config = ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Drain:Period", Heartbeat.Format(s_period))
            .Set("Reaper:Heartbeat:CloseTimeout", Heartbeat.Format(s_closeTimeout));
        var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        var stopped = false;
        try
        {
            var clients = new List<ClientWebSocket>();
            for (var i = 0; i < Clients; i++)
            {
                var client = new ClientWebSocket();
                await client.ConnectAsync(proxy.WebSocketUri("/drain"), CancellationToken.None);
                clients.Add(client);
            }

            await Eventually.UntilAsync(() => RecorderOpen == Clients, "every backend WebSocket open", TimeSpan.FromSeconds(5));
            var clock = Stopwatch.StartNew();
            var closes = clients.Select(c => ReceiveCloseAtAsync(c, clock)).ToList();
            var stop = proxy.Host.StopAsync();

            // While draining: /readyz says 503, and a new WebSocket gets a clean 503 with Retry-After.
            await Task.Delay(200);
            using (var admin = TestClients.Http1(proxy.AdminUri))
            {
                Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, (await admin.GetAsync("/readyz")).StatusCode);
            }

            var refusal = await UpgradeResponseAsync(proxy.WebSocketUri("/drain"));
            Assert.StartsWith("HTTP/1.1 503", refusal, StringComparison.Ordinal);
            Assert.Contains("Retry-After: 5", refusal, StringComparison.OrdinalIgnoreCase);

            var results = await Task.WhenAll(closes).WaitAsync(s_period + s_closeTimeout + Heartbeat.Slack);
            foreach (var (status, description, _) in results)
            {
                Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
                Assert.Equal("proxy shutting down", description);
            }

            // Spread across the period, not all in the first moment: the first at once, the last late in it.
            var times = results.Select(r => r.At).Order().ToList();
            output.WriteLine("close times: " + string.Join(", ", times.Select(t => $"{t.TotalMilliseconds:0}ms")));
            Assert.InRange(times[0], TimeSpan.Zero, Heartbeat.Slack);
            Assert.InRange(times[^1], s_period * 0.6, s_period + Heartbeat.Slack);
            Assert.True(times[^1] - times[0] >= s_period / 2, "the closes must be spread over the period, not sent together");

            // Each client answers; the backend side got its 1001 too, and the proxy stops within the bound.
            foreach (var client in clients)
            {
                await client.CloseOutputAsync(WebSocketCloseStatus.EndpointUnavailable, null, CancellationToken.None);
            }

            await stop.WaitAsync(s_period + s_closeTimeout + TimeSpan.FromSeconds(3) + Heartbeat.Slack);
            stopped = true;
            output.WriteLine($"stopped after {clock.Elapsed.TotalSeconds:0.00}s");
            await Eventually.UntilAsync(() => backendCloses.Count == Clients, "every backend WebSocket closed", TimeSpan.FromSeconds(5));
            Assert.All(backendCloses, c =>
            {
                Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, c.Status);
                Assert.Equal("proxy shutting down", c.Description);
            });
        }
        finally
        {
            if (!stopped)
            {
                await proxy.Host.StopAsync();
            }

            await proxy.DisposeAsync();
        }
    }

    [Fact]
    public async Task Hurrying_the_drain_closes_what_is_left_at_once()
    {
        var backendCloses = new ConcurrentQueue<(WebSocketCloseStatus? Status, string? Description)>();
        await using var backend = await TestBackend.StartAsync(new() { Output = output, Map = app => MapRecorder(app, backendCloses) });
        var config = ProxyConfig.CatchAll(backend.BaseUri).Set("Reaper:Drain:Period", "60s");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        var clients = new List<ClientWebSocket>();
        for (var i = 0; i < 4; i++)
        {
            var client = new ClientWebSocket();
            await client.ConnectAsync(proxy.WebSocketUri("/drain"), CancellationToken.None);
            clients.Add(client);
        }

        var clock = Stopwatch.StartNew();
        var closes = clients.Select(c => ReceiveCloseAtAsync(c, clock)).ToList();
        var stop = proxy.Host.StopAsync();
        await Task.Delay(300);
        proxy.Host.Proxy.Services.GetRequiredService<ConnectionDrain>().Hurry();

        var results = await Task.WhenAll(closes).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(results, r => Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, r.Status));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "a 60 s drain, hurried, ends in seconds");
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static int s_recorderOpen;

    private static int RecorderOpen => Volatile.Read(ref s_recorderOpen);

    // A backend WebSocket that echoes nothing, records the Close it gets, and answers it.
    private static void MapRecorder(WebApplication app, ConcurrentQueue<(WebSocketCloseStatus?, string?)> closes) =>
        app.Map("/drain", async (HttpContext context) =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref s_recorderOpen);
            try
            {
                var buffer = new byte[1024];
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        closes.Enqueue((result.CloseStatus, result.CloseStatusDescription));
                        await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                        return;
                    }
                }
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                closes.Enqueue((null, "aborted: " + ex.Message));
            }
            finally
            {
                Interlocked.Decrement(ref s_recorderOpen);
            }
        });

    private static async Task<(WebSocketCloseStatus? Status, string? Description, TimeSpan At)> ReceiveCloseAtAsync(ClientWebSocket client, Stopwatch clock)
    {
        var buffer = new byte[1024];
        while (true)
        {
            var result = await client.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return (result.CloseStatus, result.CloseStatusDescription, clock.Elapsed);
            }
        }
    }

    // The raw response head to a WebSocket upgrade request.
    private static async Task<string> UpgradeResponseAsync(Uri uri)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.Host, uri.Port);
        var request = $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        var buffer = new byte[4096];
        var read = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        return Encoding.ASCII.GetString(buffer, 0, read);
    }
}
