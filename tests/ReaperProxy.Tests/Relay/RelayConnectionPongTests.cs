using ReaperProxy.Framing;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// The proxy removes exactly the Pongs that answer its own pings (RFC 6455 §5.5.3: a Pong echoes the
/// Ping's payload); every other Pong, and the peers' own Pings, pass through untouched.
/// </summary>
public class RelayConnectionPongTests
{
    private const uint ClientMask = 0x6D3F1A22;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_clients_pong_to_the_proxys_ping_is_removed_and_other_pongs_and_pings_reach_the_backend(bool segmented)
    {
        await using var h = RelayHarness.Create(legs: "Client", segmenter: segmented ? new Random(7) : null);
        var pending = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var ping = h.SinglePingToClient();
        var others = OtherControlFrames(ping.Payload, ClientMask);

        h.Client.Send(WireFrame.Pong(ping.Payload, ClientMask).ToBytes());
        h.Client.Send(WireFrame.Concat(others));

        var expected = WireFrame.Concat(others);
        var forwarded = new List<byte>(await RelayHarness.Guard(pending));
        if (forwarded.Count < expected.Length)
        {
            forwarded.AddRange(await h.ToBackendAsync(expected.Length - forwarded.Count));
        }

        Assert.Equal(expected, forwarded);

        // The proxy answers nobody's ping itself: the client got only the proxy's own ping.
        Assert.Equal(ping.ToBytes(), h.Client.Received);
        Assert.Equal(TimeSpan.Zero, h.Relay.LastRtt(Leg.Client));
    }

    [Fact]
    public async Task The_clients_pong_is_removed_even_when_it_arrives_one_byte_at_a_time()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        var pending = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var ping = h.SinglePingToClient();
        var after = WireFrame.Text("after", mask: ClientMask).ToBytes();

        foreach (var b in WireFrame.Pong(ping.Payload, ClientMask).ToBytes())
        {
            h.Client.Send([b]);
        }

        h.Client.Send(after);

        Assert.Equal(after, await RelayHarness.Guard(pending));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_backends_pong_to_the_proxys_ping_is_removed_and_other_pongs_and_pings_reach_the_client(bool byteByByte)
    {
        await using var h = RelayHarness.Create(legs: "Backend");
        var pending = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var ping = Assert.Single(ReferenceFrameReader.ReadAll(await RelayHarness.Guard(pending)));
        Assert.Equal(WebSocketOpcode.Ping, ping.Opcode);
        var others = OtherControlFrames(ping.Payload, mask: null);
        var written = WireFrame.Concat([WireFrame.Pong(ping.Payload), .. others]);

        if (byteByByte)
        {
            foreach (var b in written)
            {
                await h.FromBackendAsync([b]);
            }
        }
        else
        {
            await h.FromBackendAsync(written);
        }

        Assert.Equal(WireFrame.Concat(others), h.Client.Received);
        Assert.Equal(TimeSpan.Zero, h.Relay.LastRtt(Leg.Backend));
    }

    [Fact]
    public async Task In_observe_mode_a_late_pong_to_the_outstanding_ping_is_removed_and_no_second_ping_is_sent()
    {
        // Observe counts the silent leg once and keeps its ping outstanding: the late pong still answers it.
        await using var h = RelayHarness.Create(mode: "Observe", legs: "Client");
        var pending = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        h.AdvanceAndTick(RelayHarness.PongTimeout);
        h.AdvanceAndTick(TimeSpan.FromSeconds(1));
        var ping = Assert.Single(ReferenceFrameReader.ReadAll(h.Client.Received));
        var after = WireFrame.Text("after", mask: ClientMask).ToBytes();

        h.Client.Send(WireFrame.Pong(ping.Payload, ClientMask).ToBytes());
        h.Client.Send(after);

        Assert.Equal(after, await RelayHarness.Guard(pending));
        Assert.NotNull(h.Relay.LastRtt(Leg.Client));
    }

    [Fact]
    public async Task A_pong_to_a_ping_that_is_no_longer_outstanding_passes_through()
    {
        // Answered once (by any byte from the client), the ping is not outstanding any more: a copy of
        // its pong later is the client's own traffic and goes to the backend.
        await using var h = RelayHarness.Create(legs: "Client");
        var pending = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var ping = Assert.Single(ReferenceFrameReader.ReadAll(h.Client.Received));
        var pong = WireFrame.Pong(ping.Payload, ClientMask).ToBytes();
        h.Client.Send(pong);
        h.AdvanceAndTick(TimeSpan.FromSeconds(1));
        var data = WireFrame.Text("data", mask: ClientMask).ToBytes();
        h.Client.Send(data);
        Assert.Equal(data, await RelayHarness.Guard(pending));

        pending = h.ToBackendAsync();
        h.Client.Send(pong);

        Assert.Equal(pong, await RelayHarness.Guard(pending));
    }

    [Fact]
    public async Task A_pong_is_not_removed_when_no_ping_of_the_proxy_went_out()
    {
        await using var h = RelayHarness.Create();
        var pending = h.ToBackendAsync();

        // The 16-byte shape of the proxy's pong, but no ping was ever sent: another connection's tag.
        var lookalike = WireFrame.Pong(new byte[16], ClientMask).ToBytes();
        h.Client.Send(lookalike);

        Assert.Equal(lookalike, await RelayHarness.Guard(pending));
    }

    /// <summary>Control frames that are not an answer to <paramref name="ourPayload"/>, then a data frame.</summary>
    private static List<WireFrame> OtherControlFrames(byte[] ourPayload, uint? mask)
    {
        var otherTag = (byte[])ourPayload.Clone();
        otherTag[3] ^= 0x40;
        return
        [
            WireFrame.Pong(otherTag, mask),
            WireFrame.Pong([.. ourPayload, 0], mask),
            WireFrame.Pong(ourPayload[..15], mask),
            WireFrame.Pong("unsolicited"u8.ToArray(), mask),
            WireFrame.Pong([], mask),
            WireFrame.Ping(ourPayload, mask),
            WireFrame.Ping("peer's own ping"u8.ToArray(), mask),
            WireFrame.Text("data after", mask: mask),
        ];
    }
}
