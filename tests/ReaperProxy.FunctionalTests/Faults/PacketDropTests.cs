using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// A peer's link goes dark mid-stream: every packet from its own loopback address is dropped by iptables
/// (no FIN, no RST, nothing — as after a cable pull or a NAT entry expiring). Needs root; skipped without.
/// </summary>
public sealed class PacketDropTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-faults-");

    public void Dispose() => _dir.Delete(recursive: true);

    [SkippableFact]
    public async Task A_client_whose_packets_are_dropped_mid_stream_is_reaped_within_the_deadline_and_the_backend_gets_Close_1001()
    {
        Skip.If(LoopbackDrop.Unavailable is not null, LoopbackDrop.Unavailable);
        var probe = new BackendProbe();
        await using var backend = await TestBackend.StartAsync(new() { Map = probe.Map, Output = output });
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir);
        var address = LoopbackDrop.NewAddress();
        await using var client = await RawWebSocket.ConnectAsync(proxy.WebSocketUri("/record"), localAddress: address);
        await EchoAsync(client, 20);

        Stopwatch dark;
        BackendOutcome outcome;
        await using (await LoopbackDrop.StartAsync(address))
        {
            dark = Stopwatch.StartNew();

            // It goes on writing into the void: those bytes never reach the proxy.
            await client.SendFrameAsync(RawFrame.Text, "lost"u8);
            outcome = await probe.Outcome.WaitAsync(FaultProxy.Deadline + FaultProxy.Slack + TimeSpan.FromSeconds(5));
        }

        var after = dark.Elapsed;
        output.WriteLine($"client packets dropped from {address}: backend got {(int?)outcome.CloseStatus} '{outcome.CloseDescription}' after {after.TotalSeconds:0.00} s (deadline {FaultProxy.Deadline.TotalSeconds} s)");
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.Equal("client unresponsive", outcome.CloseDescription);
        Assert.InRange(after, FaultProxy.PingInterval, FaultProxy.Deadline + FaultProxy.Slack);
    }

    [SkippableFact]
    public async Task A_backend_whose_packets_are_dropped_mid_stream_is_reaped_within_the_deadline_and_the_client_gets_Close_1001()
    {
        Skip.If(LoopbackDrop.Unavailable is not null, LoopbackDrop.Unavailable);
        var address = LoopbackDrop.NewAddress();
        await using var backend = await TestBackend.StartAsync(new() { Address = address, Output = output });
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir);
        // A real client stack that answers the proxy's pings by itself: only the backend leg goes dark.
        await using var client = await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"message {i}", await client.EchoAsync($"message {i}"));
        }

        Stopwatch dark;
        WebSocketReceiveResult result;
        await using (await LoopbackDrop.StartAsync(address))
        {
            dark = Stopwatch.StartNew();

            // Mid-stream: this message goes toward the backend and is never acknowledged.
            await client.SendTextAsync("lost");
            using var bound = new CancellationTokenSource(FaultProxy.Deadline + FaultProxy.Slack + TimeSpan.FromSeconds(5));
            result = await client.Socket.ReceiveAsync(new byte[1024], bound.Token);
        }

        var after = dark.Elapsed;
        output.WriteLine($"backend packets dropped from {address}: the client got {result.MessageType} {(int?)result.CloseStatus} '{result.CloseStatusDescription}' after {after.TotalSeconds:0.00} s (deadline {FaultProxy.Deadline.TotalSeconds} s)");
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, result.CloseStatus);
        Assert.Equal("backend unresponsive", result.CloseStatusDescription);
        Assert.InRange(after, FaultProxy.PingInterval, FaultProxy.Deadline + FaultProxy.Slack);
    }

    private static async Task EchoAsync(RawWebSocket client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await client.SendFrameAsync(RawFrame.Text, Encoding.UTF8.GetBytes($"message {i}"));
            var echo = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(10));
            Assert.Equal($"message {i}", Encoding.UTF8.GetString(echo!.Payload));
        }
    }
}
