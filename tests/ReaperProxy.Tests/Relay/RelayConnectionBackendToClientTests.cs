using ReaperProxy.Framing;
using ReaperProxy.Tests.Framing;
using Xunit.Abstractions;

namespace ReaperProxy.Tests.Relay;

/// <summary>The backend→client direction: what YARP writes into the relay reaches the client.</summary>
public class RelayConnectionBackendToClientTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Backend_frames_reach_the_client_unchanged_however_yarp_chunks_its_writes()
    {
        await Seeded.RunAsync(60, output, async (random, _) =>
        {
            // No Close: nothing may follow a Close (RFC 6455 §5.5.1), and the relay enforces that.
            var frames = RandomFrames.Stream(random, masked: false, allowClose: false);
            var bytes = WireFrame.Concat(frames);
            await using var h = RelayHarness.Create();
            var offset = 0;
            foreach (var chunk in RandomFrames.Chunks(random, bytes.Length))
            {
                await h.FromBackendAsync(bytes.AsSpan(offset, chunk));
                offset += chunk;
            }

            Assert.True(h.Client.Received.AsSpan().SequenceEqual(bytes), "the client got other bytes than the backend sent");
        });
    }

    [Fact]
    public async Task A_ping_for_a_quiet_client_goes_out_at_once_when_the_stream_is_between_frames()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();
        await h.FromBackendAsync(WireFrame.Text("hello").ToBytes());

        h.AdvanceAndTick(RelayHarness.PingInterval);

        var frames = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal([WebSocketOpcode.Text, WebSocketOpcode.Ping], frames.Select(f => f.Opcode));
        var ping = frames[1];
        Assert.Null(ping.MaskKey);
        // The payload carries no time a peer could rewrite: the RTT comes from the proxy's own record.
        var (_, sequence) = RelayHarness.ReadPingPayload(ping.Payload);
        Assert.Equal(1UL, sequence);
    }

    [Fact]
    public async Task A_ping_for_the_client_waits_for_the_end_of_a_frame_the_backend_is_in_the_middle_of()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();
        var big = WireFrame.Binary(1000, fin: false).ToBytes();
        var next = WireFrame.Continuation(10, fin: true).ToBytes();
        await h.FromBackendAsync(big.AsSpan(0, 300));

        h.AdvanceAndTick(RelayHarness.PingInterval);

        Assert.Equal(big[..300], h.Client.Received);

        await h.FromBackendAsync([.. big[300..], .. next]);

        var frames = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal([WebSocketOpcode.Binary, WebSocketOpcode.Ping, WebSocketOpcode.Continuation], frames.Select(f => f.Opcode));
        Assert.Equal(big, frames[0].ToBytes());
        Assert.Equal(next, frames[2].ToBytes());
        Assert.Null(frames[1].MaskKey);
        Assert.Equal(16, frames[1].Payload.Length);
    }

    [Fact]
    public async Task A_ping_for_the_client_waits_while_a_header_is_split_across_writes()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();
        var frame = WireFrame.Binary(70_000).ToBytes();

        // The 64-bit length header is 10 bytes; the first write ends inside it.
        await h.FromBackendAsync(frame.AsSpan(0, 5));
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var beforeRest = ReferenceFrameReader.ReadAll(h.Client.Received);
        await h.FromBackendAsync(frame.AsSpan(5));

        // A ping sent while the header was held goes before it: still between frames.
        var frames = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal([WebSocketOpcode.Ping, WebSocketOpcode.Binary], frames.Select(f => f.Opcode));
        Assert.Equal(frame, frames[1].ToBytes());
        Assert.Single(beforeRest);
    }

    [Fact]
    public async Task Pings_for_the_client_land_only_between_frames_whatever_the_chunking()
    {
        const int Iterations = 40;
        var totalPings = 0;
        await Seeded.RunAsync(Iterations, output, async (random, _) =>
        {
            var frames = RandomFrames.Stream(random, masked: false, allowClose: false);
            var bytes = WireFrame.Concat(frames);
            // Observe mode: the client never answers here, and Enforce would reap it (and then
            // drop everything toward it) after the second tick.
            await using var h = RelayHarness.Create(mode: "Observe", legs: "Client");
            h.KeepReadPending();
            var offset = 0;
            var pings = 0;
            foreach (var chunk in RandomFrames.Chunks(random, bytes.Length))
            {
                await h.FromBackendAsync(bytes.AsSpan(offset, chunk));
                offset += chunk;
                if (random.Next(3) == 0)
                {
                    // Quiet long enough for a ping; the ping may have to wait for a boundary.
                    h.AdvanceAndTick(RelayHarness.PingInterval);
                    pings++;
                }
            }

            var back = ReferenceFrameReader.ReadAll(h.Client.Received);
            var ours = back.Where(f => f.Opcode == WebSocketOpcode.Ping && f.Payload.Length == 16 && f.MaskKey is null && !frames.Any(g => g.Payload.AsSpan().SequenceEqual(f.Payload))).ToList();
            Assert.Equal(frames.Select(f => f.ToBytes()), back.Except(ours).Select(f => f.ToBytes()));
            Assert.True(ours.Count <= pings, $"{ours.Count} pings for {pings} ticks");
            totalPings += ours.Count;
        });

        Assert.True(totalPings >= Iterations / 2, $"only {totalPings} pings were injected in {Iterations} streams");
    }
}
