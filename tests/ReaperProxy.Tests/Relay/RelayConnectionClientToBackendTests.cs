using ReaperProxy.Framing;
using ReaperProxy.Tests.Framing;
using Xunit.Abstractions;

namespace ReaperProxy.Tests.Relay;

/// <summary>The client→backend direction: what the client sends comes out of the relay's reads.</summary>
public class RelayConnectionClientToBackendTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(64 * 1024)]
    [InlineData(100)]
    public async Task Client_frames_reach_the_backend_unchanged_however_tcp_segments_them(int readBufferSize)
    {
        // 100 bytes is below the relay's direct-read minimum and exercises its overflow path.
        await Seeded.RunAsync(40, output, async (random, seed) =>
        {
            var frames = RandomFrames.Stream(random, masked: true, allowClose: false);
            var bytes = WireFrame.Concat(frames);
            await using var h = RelayHarness.Create(segmenter: new Random(seed), readBufferSize: readBufferSize);
            h.Client.Send(bytes);

            var forwarded = await h.ToBackendAsync(bytes.Length);

            Assert.True(forwarded.AsSpan().SequenceEqual(bytes), "the backend got other bytes than the client sent");
        });
    }

    [Fact]
    public async Task A_small_buffer_read_that_gets_only_part_of_a_header_waits_for_the_rest_instead_of_failing()
    {
        // Found by the fuzzer (tools/fuzz/regressions/relay/small-buffer-held-header): once a small-buffer
        // read had drained the overflow, a read that forwarded nothing (a header cut short, or only the
        // proxy's pong) drained the released overflow again at its old offset and threw
        // ArgumentOutOfRangeException, failing YARP's copy loop.
        await using var h = RelayHarness.Create(readBufferSize: 16);
        var first = WireFrame.Text("longer than one sixteen-byte read", mask: 0x10203040).ToBytes();
        h.Client.Send(first);
        Assert.Equal(first, await h.ToBackendAsync(first.Length));

        var second = WireFrame.Text("next", mask: 0x50607080).ToBytes();
        h.Client.Send(second.AsSpan(0, 1));
        var pending = h.ToBackendAsync();
        h.Client.Send(second.AsSpan(1));
        var forwarded = new List<byte>(await RelayHarness.Guard(pending));
        if (forwarded.Count < second.Length)
        {
            forwarded.AddRange(await h.ToBackendAsync(second.Length - forwarded.Count));
        }

        Assert.Equal(second, forwarded);
    }

    [Fact]
    public async Task Client_bytes_sent_while_yarp_waits_come_out_of_the_waiting_read()
    {
        await using var h = RelayHarness.Create();
        var pending = h.ToBackendAsync();
        var frame = WireFrame.Text("late", mask: 0x10203040).ToBytes();

        h.Client.Send(frame);

        Assert.Equal(frame, await RelayHarness.Guard(pending));
    }

    [Fact]
    public async Task A_ping_for_a_quiet_backend_comes_out_of_the_waiting_read_masked()
    {
        await using var h = RelayHarness.Create(legs: "Backend");
        var pending = h.ToBackendAsync();

        h.AdvanceAndTick(RelayHarness.PingInterval);

        var ping = Assert.Single(ReferenceFrameReader.ReadAll(await RelayHarness.Guard(pending)));
        Assert.Equal(WebSocketOpcode.Ping, ping.Opcode);
        Assert.NotNull(ping.MaskKey);
        // The payload carries no time a peer could rewrite: the RTT comes from the proxy's own record.
        var (_, sequence) = RelayHarness.ReadPingPayload(ping.Payload);
        Assert.Equal(1UL, sequence);
        Assert.Empty(h.Client.Received);
    }

    [Fact]
    public async Task A_ping_for_the_backend_waits_for_the_end_of_a_frame_the_client_is_in_the_middle_of()
    {
        await using var h = RelayHarness.Create(legs: "Backend");
        var big = WireFrame.Binary(1000, fin: false, mask: 0xA5A5A5A5).ToBytes();
        var next = WireFrame.Continuation(10, fin: true, mask: 0x5A5A5A5A).ToBytes();
        h.Client.Send(big.AsSpan(0, 300));
        var forwarded = new List<byte>(await h.ToBackendAsync(300));
        var pending = h.ToBackendAsync();

        h.AdvanceAndTick(RelayHarness.PingInterval);
        h.Client.Send([.. big[300..], .. next]);

        forwarded.AddRange(await RelayHarness.Guard(pending));
        forwarded.AddRange(await h.ToBackendAsync(big.Length + RelayHarness.MaskedPingLength + next.Length - forwarded.Count));
        var frames = ReferenceFrameReader.ReadAll(forwarded.ToArray());
        Assert.Equal([WebSocketOpcode.Binary, WebSocketOpcode.Ping, WebSocketOpcode.Continuation], frames.Select(f => f.Opcode));
        Assert.Equal(big, frames[0].ToBytes());
        Assert.Equal(next, frames[2].ToBytes());
        Assert.NotNull(frames[1].MaskKey);
        Assert.Equal(16, frames[1].Payload.Length);
    }

    [Fact]
    public async Task Pings_for_the_backend_land_only_between_frames_whatever_the_segmenting()
    {
        const int Iterations = 40;
        var totalPings = 0;
        await Seeded.RunAsync(Iterations, output, async (random, seed) =>
        {
            var frames = RandomFrames.Stream(random, masked: true, allowClose: false);
            var bytes = WireFrame.Concat(frames);

            // Observe: the backend never answers here, and Enforce would reap it after two ticks.
            await using var h = RelayHarness.Create(mode: "Observe", legs: "Backend", segmenter: new Random(seed));
            var reader = h.StartBackendReader();
            var offset = 0;
            foreach (var chunk in RandomFrames.Chunks(random, bytes.Length))
            {
                if (random.Next(3) == 0)
                {
                    h.AdvanceAndTick(RelayHarness.PingInterval);
                }

                h.Client.Send(bytes.AsSpan(offset, chunk));
                offset += chunk;
            }

            // Until every byte the client sent went through (a last ping may still be waiting).
            List<WireFrame> back = [];
            List<WireFrame> ours = [];
            await reader.WaitUntilAsync(forwarded => TryParse(forwarded, frames, out back, out ours) && forwarded.Length - (RelayHarness.MaskedPingLength * ours.Count) >= bytes.Length);

            Assert.All(ours, p => Assert.NotNull(p.MaskKey));
            Assert.Equal(frames.Select(f => f.ToBytes()), back.Except(ours).Select(f => f.ToBytes()));
            totalPings += ours.Count;
        });

        Assert.True(totalPings >= Iterations / 2, $"only {totalPings} pings were injected in {Iterations} streams");
    }

    // Parses what was forwarded so far; false while it ends inside a frame.
    private static bool TryParse(byte[] forwarded, List<WireFrame> input, out List<WireFrame> back, out List<WireFrame> ours)
    {
        try
        {
            back = ReferenceFrameReader.ReadAll(forwarded);
        }
        catch (InvalidDataException ex) when (ex.Message.Contains("truncated", StringComparison.Ordinal))
        {
            back = ours = [];
            return false;
        }

        ours = back.Where(f => f.Opcode == WebSocketOpcode.Ping && f.Payload.Length == 16 && !input.Any(g => g.Payload.AsSpan().SequenceEqual(f.Payload))).ToList();
        return true;
    }
}
