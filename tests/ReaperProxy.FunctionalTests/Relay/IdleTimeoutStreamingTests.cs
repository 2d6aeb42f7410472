using System.Diagnostics;
using System.Net.WebSockets;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// IdleTimeout counts data, not frame headers: one long, slow data frame is data the whole time its
/// payload moves, and only the silence after it counts.
/// </summary>
public sealed class IdleTimeoutStreamingTests(ITestOutputHelper output)
{
    // Pings far away (no leg is judged during the test): only IdleTimeout acts. A CloseTimeout of 1 s
    // means a connection wrongly closed mid-frame is also cut well before the frame could end.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1));
    private static readonly TimeSpan s_idle = TimeSpan.FromSeconds(1);

    // One binary frame of 1.5 MB, 30 KB every 100 ms (≈300 KB/s): about 5 s, five IdleTimeouts long.
    private const int FrameSize = 1_500_000;
    private const int ChunkSize = 30_000;
    private static readonly TimeSpan s_chunkPause = TimeSpan.FromMilliseconds(100);

    [Fact]
    public async Task A_slow_frame_longer_than_IdleTimeout_arrives_whole_and_only_the_silence_after_it_closes_both_legs_with_1001_idle()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat,
            configure: c => c.Set("Reaper:Heartbeat:IdleTimeout", Heartbeat.Format(s_idle)));
        var (client, backendFirst, frameEnd, clock) = await StreamOneSlowFrameThroughAsync(fixture);
        await using var _ = client;
        if (backendFirst.IsCompleted)
        {
            var (early, earlyAt) = await backendFirst;
            Assert.Fail($"while its own frame was still moving (until {frameEnd}), the backend got {early?.ToString() ?? "its connection ended"} at {earlyAt}");
        }

        // Only now, IdleTimeout after the last payload byte, both legs get Close 1001 "idle".
        var (status, description) = await client.Socket.ReceiveCloseAsync(s_idle + Heartbeat.Slack);
        var clientClosedAt = clock.Elapsed;
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("idle", description);
        Assert.InRange(clientClosedAt - frameEnd, s_idle - TimeSpan.FromMilliseconds(100), s_idle + Heartbeat.Slack);

        var (close, at) = await backendFirst.WaitAsync(Heartbeat.Slack);
        Assert.NotNull(close);
        Assert.Equal(RawFrame.Close, close!.Opcode);
        Assert.True(close.Masked, "frames toward the backend are masked");
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("idle", close.CloseReason);
        Assert.InRange(at - frameEnd, s_idle - TimeSpan.FromMilliseconds(100), s_idle + Heartbeat.Slack);
    }

    [Fact]
    public async Task A_slow_frame_arrives_whole_with_IdleTimeout_off()
    {
        // The harness check for the test above: same frame, same pace, no IdleTimeout.
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        var (client, backendFirst, _, _) = await StreamOneSlowFrameThroughAsync(fixture);
        await using var _ = client;
        Assert.False(backendFirst.IsCompleted, "the backend must get nothing");
        Assert.Equal(WebSocketState.Open, client.Socket.State);
    }

    // The backend streams one slow frame to the client, which must get it whole. Returns the client, what
    // reaches the backend while (and after) it streams with when it arrived, and when the frame ended.
    private static async Task<(TestWebSocket Client, Task<(RawFrame? Frame, TimeSpan At)> BackendFirst, TimeSpan FrameEnd, Stopwatch Clock)> StreamOneSlowFrameThroughAsync(RelayFixture fixture)
    {
        var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/raw"));
        var backendStream = await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5));
        var clock = Stopwatch.StartNew();
        var backendFirst = ReceiveTimedAsync(new RawFrameReader(backendStream), clock, TimeSpan.FromSeconds(20));
        var payload = Payload();
        var streaming = StreamOneSlowFrameAsync(backendStream, payload, clock);
        await ReceiveWholeFrameAsync(client.Socket, payload, TimeSpan.FromSeconds(20));
        return (client, backendFirst, await streaming, clock);
    }

    private static byte[] Payload()
    {
        var payload = new byte[FrameSize];
        new Random(1001).NextBytes(payload);
        return payload;
    }

    // The backend writes one frame header (64-bit length), then the payload in pieces with pauses.
    // Returns when the last byte was written.
    private static async Task<TimeSpan> StreamOneSlowFrameAsync(Stream backend, byte[] payload, Stopwatch clock)
    {
        var frame = RawWebSocket.EncodeFrame(RawFrame.Binary, payload, mask: false);
        var header = frame.Length - payload.Length;
        Assert.Equal(10, header);
        await backend.WriteRawAsync(frame.AsMemory(0, header));
        for (var offset = header; offset < frame.Length; offset += ChunkSize)
        {
            await Task.Delay(s_chunkPause);
            await backend.WriteRawAsync(frame.AsMemory(offset, Math.Min(ChunkSize, frame.Length - offset)));
        }

        return clock.Elapsed;
    }

    // The client reads one whole binary message and checks every byte; a Close or a cut mid-frame fails.
    private static async Task ReceiveWholeFrameAsync(ClientWebSocket socket, byte[] expected, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var received = new byte[expected.Length];
        var count = 0;
        var buffer = new byte[64 * 1024];
        try
        {
            for (var i = 0; i < 100_000; i++)
            {
                var result = await socket.ReceiveAsync(buffer, cts.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Assert.Fail($"the client got Close {(int?)result.CloseStatus} '{result.CloseStatusDescription}' after {count} of {expected.Length} bytes of the frame");
                }

                Assert.Equal(WebSocketMessageType.Binary, result.MessageType);
                Assert.True(count + result.Count <= expected.Length, "more bytes than the frame has");
                buffer.AsSpan(0, result.Count).CopyTo(received.AsSpan(count));
                count += result.Count;
                if (result.EndOfMessage)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            Assert.Fail($"the frame was cut after {count} of {expected.Length} bytes: {ex.GetType().Name}: {ex.Message}");
        }

        Assert.Equal(expected.Length, count);
        Assert.True(expected.AsSpan().SequenceEqual(received), "the frame's payload differs from what the backend sent");
    }

    private static async Task<(RawFrame? Frame, TimeSpan At)> ReceiveTimedAsync(RawFrameReader reader, Stopwatch clock, TimeSpan timeout)
    {
        try
        {
            var frame = await reader.ReceiveFrameAsync(timeout);
            return (frame, clock.Elapsed);
        }
        catch (Exception ex) when (ex is TimeoutException or IOException)
        {
            return (null, clock.Elapsed);
        }
    }
}
