using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// Only the pongs that answer the proxy's own outstanding pings are removed. A pong that merely carries
/// the proxy's payload (a peer's ping echoed back, an unsolicited pong) is the peers' business.
/// </summary>
public sealed class OwnPongsTests(ITestOutputHelper output)
{
    // Only the client is pinged (Legs=Client): no ping to the backend is ever outstanding, so no pong
    // from the backend can be the proxy's.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(600));

    [Theory]
    [InlineData(true)]
    [InlineData(false)] // The harness check: a payload of the client's own, which nothing could mistake.
    public async Task The_backends_pong_to_the_clients_own_ping_reaches_the_client_even_with_the_proxys_payload(bool proxysPayload)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        using var rtt = RttCollector(fixture);

        // /record keeps a receive pending, so Kestrel's WebSocket answers pings on its own.
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        var ping = await ReceiveProxyPingAsync(client);
        await client.SendFrameAsync(RawFrame.Pong, ping.Payload);

        // The client's own ping to the backend: with exactly the bytes the proxy put in its ping, or its own.
        var payload = proxysPayload ? ping.Payload : "the client's ping"u8.ToArray()[..16];
        await client.SendFrameAsync(RawFrame.Ping, payload);
        var pong = await ReceivePongAnsweringProxyPingsAsync(client, TimeSpan.FromSeconds(3));
        Assert.True(pong is not null, "the backend's Pong to the client's own Ping never reached the client (removed as if it answered a proxy ping)");
        Assert.Equal(payload, pong!.Payload);
        Assert.False(pong.Masked, "frames toward the client are not masked");

        // The client's answer to the proxy's ping was the proxy's; nothing was measured for the backend.
        await Eventually.UntilAsync(() => rtt.GetMeasurementSnapshot().Any(m => Tag(m.Tags, "leg") == "client"), "the client's pong RTT");
        Assert.DoesNotContain(rtt.GetMeasurementSnapshot(), m => Tag(m.Tags, "leg") == "backend");
    }

    [Fact]
    public async Task The_clients_answer_to_the_proxys_ping_is_removed_and_never_reaches_the_backend()
    {
        // The harness check for the test below: what the proxy must remove, it removes.
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = new RawFrameReader(await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5)));
        var ping = await ReceiveProxyPingAsync(client);
        await client.SendFrameAsync(RawFrame.Pong, ping.Payload);
        var marker = RawWebSocket.EncodeFrame(RawFrame.Text, "marker"u8);
        await client.SendRawAsync(marker);

        var first = await backend.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.True(first is not null && first.Wire.AsSpan().SequenceEqual(marker), $"the backend's first frame must be the marker, got {first}");
    }

    [Fact]
    public async Task An_unsolicited_pong_with_the_proxys_payload_after_the_ping_was_answered_reaches_the_backend_byte_for_byte()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        using var rtt = RttCollector(fixture);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = new RawFrameReader(await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5)));
        var ping = await ReceiveProxyPingAsync(client);

        // The answer: the proxy's, removed. Wait until the proxy has taken it in (its RTT is measured).
        await client.SendFrameAsync(RawFrame.Pong, ping.Payload);
        await Eventually.UntilAsync(() => rtt.GetMeasurementSnapshot().Any(m => Tag(m.Tags, "leg") == "client"), "the answer to be taken as the client's pong");

        // The same pong again: no ping is outstanding now, so it is the client's own (unsolicited) pong.
        var again = RawWebSocket.EncodeFrame(RawFrame.Pong, ping.Payload);
        var marker = RawWebSocket.EncodeFrame(RawFrame.Text, "marker"u8);
        await client.SendRawAsync(again);
        await client.SendRawAsync(marker);

        var first = await backend.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.True(first is not null && first.Wire.AsSpan().SequenceEqual(again),
            $"the backend's first frame must be the unsolicited pong exactly as the client sent it, got {first}");
        var second = await backend.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.True(second is not null && second.Wire.AsSpan().SequenceEqual(marker), $"then the marker, got {second}");
    }

    private static MetricCollector<double> RttCollector(RelayFixture fixture) =>
        new(fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), "ReaperProxy", "reaper.pong.rtt");

    private static string? Tag(IReadOnlyDictionary<string, object?> tags, string key) => tags.TryGetValue(key, out var v) ? v?.ToString() : null;

    // The proxy's ping to the client: unmasked, 16-byte payload.
    private static async Task<RawFrame> ReceiveProxyPingAsync(RawWebSocket client)
    {
        var ping = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(ping);
        Assert.Equal(RawFrame.Ping, ping!.Opcode);
        Assert.False(ping.Masked, "pings toward the client are not masked");
        Assert.Equal(16, ping.Payload.Length);
        return ping;
    }

    // Reads until a Pong arrives (null if none within timeout), answering the proxy's later pings meanwhile.
    private static async Task<RawFrame?> ReceivePongAnsweringProxyPingsAsync(RawWebSocket client, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        for (var i = 0; i < 100; i++)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                return null;
            }

            RawFrame? frame;
            try
            {
                frame = await client.ReceiveFrameAsync(left);
            }
            catch (TimeoutException)
            {
                return null;
            }

            Assert.True(frame is not null, "the client's connection ended");
            switch (frame!.Opcode)
            {
                case RawFrame.Pong:
                    return frame;
                case RawFrame.Ping:
                    await client.SendFrameAsync(RawFrame.Pong, frame.Payload);
                    break;
                default:
                    Assert.Fail($"unexpected frame toward the client: {frame}");
                    break;
            }
        }

        return null;
    }
}
