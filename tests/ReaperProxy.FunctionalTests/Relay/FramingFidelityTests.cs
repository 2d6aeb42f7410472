using System.Collections.Concurrent;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// Raw client ⇄ proxy ⇄ raw backend: every byte of the peers arrives unchanged and in order while the
/// proxy injects pings (at frame boundaries only) and removes the pongs that answer them.
/// </summary>
public sealed class FramingFidelityTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Every_frame_arrives_unchanged_both_ways_while_pings_are_injected_and_our_pongs_removed()
    {
        // Long PongTimeout: a peer paused in the middle of its own frame can only answer after it.
        var heartbeat = new Heartbeat(TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat);
        var (clientSent, backendSent, clientGot, backendGot, pings) = await ExchangeAsync(fixture, seed: 6455, answerPings: true);

        AssertSameFrames(backendSent, clientGot, "backend -> client");
        AssertSameFrames(clientSent, backendGot, "client -> backend");
        Assert.True(pings.ToClient > 0, "the quiet client leg must have been pinged during the pauses");
        Assert.True(pings.ToBackend > 0, "the quiet backend leg must have been pinged during the pauses");
    }

    [Fact]
    public async Task Off_mode_passes_bytes_untouched_and_never_pings()
    {
        var heartbeat = new Heartbeat(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat, mode: "Off");

        // Off means no parsing at all: even a frame with a reserved opcode passes.
        var (clientSent, backendSent, clientGot, backendGot, pings) = await ExchangeAsync(fixture, seed: 8441, answerPings: false,
            extraClientFrame: RawWebSocket.EncodeFrame(0x3, "reserved opcode"u8));

        AssertSameFrames(backendSent, clientGot, "backend -> client");
        AssertSameFrames(clientSent, backendGot, "client -> backend");
        Assert.Equal(0, pings.ToClient);
        Assert.Equal(0, pings.ToBackend);
    }

    [Fact]
    public async Task A_reserved_opcode_closes_both_legs_with_1002_and_is_never_forwarded()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = new RawFrameReader(await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5)));

        var good = RawWebSocket.EncodeFrame(RawFrame.Text, "ok"u8);
        var bad = RawWebSocket.EncodeFrame(0x3, "reserved"u8);
        var after = RawWebSocket.EncodeFrame(RawFrame.Text, "after"u8);
        await client.SendRawAsync(good.Concat(bad).Concat(after).ToArray());

        var first = await backend.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(good, first!.Wire);
        var close = await backend.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(RawFrame.Close, close!.Opcode);
        Assert.True(close.Masked, "frames toward the backend are masked");
        Assert.Equal(1002, close.CloseCode);

        var toClient = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(RawFrame.Close, toClient!.Opcode);
        Assert.False(toClient.Masked, "frames toward the client are not masked");
        Assert.Equal(1002, toClient.CloseCode);

        // Nothing of the bad frame or after it reaches the backend; both connections end.
        Assert.True(await backend.WaitForEndOfStreamAsync(Heartbeat.Fast.CloseTimeout + Heartbeat.Slack));
        Assert.True(await client.WaitForEndOfStreamAsync(Heartbeat.Fast.CloseTimeout + Heartbeat.Slack));
        var logged = Assert.Single(fixture.Logs.WithEventId(2006));
        Assert.Contains("client->backend", logged.Message);
        Assert.Contains("route all", logged.Message);
    }

    private static void AssertSameFrames(IReadOnlyList<byte[]> sent, IReadOnlyList<RawFrame> received, string direction)
    {
        Assert.True(sent.Count == received.Count, $"{direction}: sent {sent.Count} frames, received {received.Count}");
        for (var i = 0; i < sent.Count; i++)
        {
            Assert.True(sent[i].AsSpan().SequenceEqual(received[i].Wire), $"{direction}: frame {i} differs ({received[i]})");
        }
    }

    private sealed record PingCounts(int ToClient, int ToBackend);

    // Both peers write their frames in random chunks with pauses (some longer than PingInterval, some in
    // the middle of a frame), answer the proxy's pings only between their own frames, and record what
    // arrives. Returns the frames each side sent and received (the proxy's pings left out).
    private async Task<(List<byte[]> ClientSent, List<byte[]> BackendSent, List<RawFrame> ClientGot, List<RawFrame> BackendGot, PingCounts Pings)> ExchangeAsync(
        RelayFixture fixture, int seed, bool answerPings, byte[]? extraClientFrame = null)
    {
        var random = new Random(seed);
        output.WriteLine($"seed {seed}");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backendStream = await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5));
        var backendReader = new RawFrameReader(backendStream);

        var clientFrames = Frames(random, mask: true);
        if (extraClientFrame is not null)
        {
            clientFrames.Insert(3, extraClientFrame);
        }

        var backendFrames = Frames(random, mask: false);
        var clientPongs = new ConcurrentQueue<byte[]>();
        var backendPongs = new ConcurrentQueue<byte[]>();
        var toClient = 0;
        var toBackend = 0;
        using var done = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var clientGot = ReadAsync(client.ReceiveFrameAsync, backendFrames.Count, p => { Interlocked.Increment(ref toClient); if (answerPings) clientPongs.Enqueue(RawWebSocket.EncodeFrame(RawFrame.Pong, p, mask: true)); });
        var backendGot = ReadAsync(backendReader.ReceiveFrameAsync, clientFrames.Count, p => { Interlocked.Increment(ref toBackend); if (answerPings) backendPongs.Enqueue(RawWebSocket.EncodeFrame(RawFrame.Pong, p, mask: false)); });
        var clientWriter = WriteAsync(b => client.SendRawAsync(b), clientFrames, clientPongs, new Random(seed + 1), done.Token);
        var backendWriter = WriteAsync(async b => { await backendStream.WriteAsync(b); await backendStream.FlushAsync(); }, backendFrames, backendPongs, new Random(seed + 2), done.Token);

        var received = await Task.WhenAll(clientGot, backendGot).WaitAsync(TimeSpan.FromSeconds(45));
        done.Cancel();
        await Task.WhenAll(clientWriter, backendWriter);
        return (clientFrames, backendFrames, received[0], received[1], new PingCounts(toClient, toBackend));
    }

    // Frames of every length encoding, text and binary, a fragmented message with the peer's own ping
    // and an unsolicited pong between its fragments, and an RSV1 (permessage-deflate style) frame.
    private static List<byte[]> Frames(Random random, bool mask)
    {
        byte[] Payload(int n)
        {
            var p = new byte[n];
            random.NextBytes(p);
            return p;
        }

        var frames = new List<byte[]>();
        foreach (var size in new[] { 0, 1, 125, 126, 127, 1000, 65535, 65536, 100_000 })
        {
            frames.Add(RawWebSocket.EncodeFrame(RawFrame.Binary, Payload(size), mask: mask));
        }

        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Text, Encoding.UTF8.GetBytes("hello, zombie hunters"), mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Binary, Payload(500), fin: false, mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Ping, "peer's own ping"u8, mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Continuation, Payload(126), fin: false, mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Pong, "unsolicited"u8, mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Continuation, Payload(70_000), fin: true, mask: mask));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Text, Encoding.UTF8.GetBytes("compressed-looking"), mask: mask, rsv: 4));
        frames.Add(RawWebSocket.EncodeFrame(RawFrame.Text, Encoding.UTF8.GetBytes("the end"), mask: mask));
        return frames;
    }

    private static async Task<List<RawFrame>> ReadAsync(Func<TimeSpan?, Task<RawFrame?>> receive, int expected, Action<byte[]> onProxyPing)
    {
        var frames = new List<RawFrame>();
        while (frames.Count < expected)
        {
            var frame = await receive(TimeSpan.FromSeconds(30)) ?? throw new IOException($"stream ended after {frames.Count} of {expected} frames");

            // The proxy's pings carry a 16-byte payload; the peers' own pings in this test do not.
            if (frame.Opcode == RawFrame.Ping && frame.Payload.Length == 16)
            {
                onProxyPing(frame.Payload);
                continue;
            }

            frames.Add(frame);
        }

        return frames;
    }

    private static async Task WriteAsync(Func<byte[], Task> send, List<byte[]> frames, ConcurrentQueue<byte[]> pongs, Random random, CancellationToken done)
    {
        var longPauses = new HashSet<int> { 1, 5, frames.Count - 3 };
        for (var f = 0; f < frames.Count; f++)
        {
            while (pongs.TryDequeue(out var pong))
            {
                await send(pong);
            }

            var frame = frames[f];
            var offset = 0;
            var pausedInside = false;
            while (offset < frame.Length)
            {
                var chunk = Math.Min(frame.Length - offset, 1 + random.Next(8192));
                await send(frame[offset..(offset + chunk)]);
                offset += chunk;

                // A pause longer than PingInterval in the middle of a frame, where nothing may be injected.
                if (longPauses.Contains(f) && !pausedInside && offset < frame.Length)
                {
                    pausedInside = true;
                    await Task.Delay(400, CancellationToken.None);
                }
                else if (random.Next(4) == 0)
                {
                    await Task.Delay(random.Next(5), CancellationToken.None);
                }
            }

            if (longPauses.Contains(f))
            {
                // And one between frames.
                await Task.Delay(400, CancellationToken.None);
            }
        }

        // Keep answering pings until the other side has everything.
        while (!done.IsCancellationRequested)
        {
            while (pongs.TryDequeue(out var pong))
            {
                await send(pong);
            }

            try
            {
                await Task.Delay(20, done);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
