using ReaperProxy.Framing;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// DESIGN.md: "a leg that stays silent for PongTimeout <em>after a ping</em> is dead". A ping can only go
/// out at a frame boundary; while the stream toward a leg is in the middle of a frame, the leg has not
/// been pinged, so its silence proves nothing yet.
/// </summary>
public class RelayConnectionPingNotSentTests
{
    [Fact]
    public async Task A_quiet_client_receiving_one_long_frame_is_not_reaped_before_its_ping_could_go_out()
    {
        // A client downloading one 100 KiB frame that the backend streams at 2 KiB/s: the client is
        // alive (it sends nothing, as browsers do while receiving), but no boundary comes for 50 s.
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();
        var frame = WireFrame.Binary(100 * 1024).ToBytes();
        var sent = 0;
        var elapsed = TimeSpan.Zero;
        while (sent < frame.Length && elapsed < RelayHarness.PingInterval + RelayHarness.PongTimeout + TimeSpan.FromSeconds(5))
        {
            var piece = Math.Min(2048, frame.Length - sent);
            await h.FromBackendAsync(frame.AsSpan(sent, piece));
            sent += piece;
            h.AdvanceAndTick(TimeSpan.FromSeconds(1));
            elapsed += TimeSpan.FromSeconds(1);
        }

        // 20 s in, the ping is still waiting for the end of the frame: nothing was sent to answer.
        Assert.True(h.Relay.Reason == CloseReason.None, $"the client was reaped ({h.Relay.Reason}) though no ping had reached it");
        Assert.Equal(frame[..sent], h.Client.Received);
    }

    [Fact]
    public async Task A_quiet_backend_receiving_one_long_upload_is_not_reaped_before_its_ping_could_go_out()
    {
        // The mirror image: a client uploads one 100 KiB frame at 2 KiB/s to a backend that only listens.
        await using var h = RelayHarness.Create(legs: "Backend");
        var frame = WireFrame.Binary(100 * 1024, mask: 0x01234567).ToBytes();
        var forwarded = new List<byte>();
        var sent = 0;
        for (var second = 0; second < 20; second++)
        {
            var piece = Math.Min(2048, frame.Length - sent);
            var read = h.ToBackendAsync();
            h.Client.Send(frame.AsSpan(sent, piece));
            sent += piece;
            forwarded.AddRange(await RelayHarness.Guard(read));
            h.AdvanceAndTick(TimeSpan.FromSeconds(1));
            if (h.Relay.Reason != CloseReason.None)
            {
                // Reaped: what the client sends from now on is dropped, so stop reading.
                break;
            }
        }

        Assert.True(h.Relay.Reason == CloseReason.None, $"the backend was reaped ({h.Relay.Reason}) though no ping had reached it");
        Assert.Equal(frame[..sent], forwarded);
    }

    [Fact]
    public async Task A_backend_that_dies_in_the_middle_of_a_frame_is_reaped_as_the_dead_leg_not_the_client()
    {
        await using var h = RelayHarness.Create();
        var read = h.ToBackendAsync();

        // The backend sends half a frame and goes silent for good.
        var frame = WireFrame.Binary(4000).ToBytes();
        await h.FromBackendAsync(frame.AsSpan(0, 2000));

        h.AdvanceAndTick(RelayHarness.PingInterval);
        var backendPing = Assert.Single(ReferenceFrameReader.ReadAll(await RelayHarness.Guard(read)));
        Assert.Equal(WebSocketOpcode.Ping, backendPing.Opcode);
        read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PongTimeout);

        // The client could not be pinged (no boundary toward it); the backend was pinged and is silent.
        Assert.Equal(frame[..2000], h.Client.Received);
        Assert.Equal(CloseReason.BackendDead, h.Relay.Reason);
    }
}
