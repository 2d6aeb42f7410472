using Microsoft.Extensions.DependencyInjection;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;
using ReaperProxy.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Limits;

/// <summary>
/// The most control-frame bytes the relay holds per connection: a peer that trickles a control frame (or a
/// header) a byte at a time makes the relay hold exactly the bytes of the one incomplete unit, never more
/// than <see cref="RelayConnection.MaxHeldPerDirection"/> (130) per direction, and the frame goes on whole the
/// moment its last byte arrives. Through a real proxy, both directions.
/// </summary>
public sealed class HeldControlFrameTests(ITestOutputHelper output)
{
    // Slow enough that no ping of the proxy's lands while the test trickles (the raw backend answers none).
    private static readonly Heartbeat s_quiet = new(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
    private static readonly TimeSpan s_step = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(1);

    [Fact]
    public async Task A_peer_trickling_control_frames_byte_by_byte_makes_the_relay_hold_at_most_one_incomplete_frame_per_direction()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_quiet);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = await fixture.Probe.RawStream.WaitAsync(Eventually.DefaultTimeout);
        var relay = Assert.Single(fixture.Proxy.Host.Proxy.Services.GetRequiredService<ConnectionRegistry>().Snapshot());
        Assert.Equal(0, relay.HeldBytes);
        var backendReader = new RawFrameReader(backend);
        var most = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();

        // Client → backend: the largest control frame there is (masked, 125-byte payload: 131 bytes), then
        // the shortest, then a data frame's longest header form; each trickled.
        var payload = Enumerable.Range(0, 125).Select(i => (byte)i).ToArray();
        foreach (var frame in new[]
        {
            RawWebSocket.EncodeFrame(RawFrame.Ping, payload),
            RawWebSocket.EncodeFrame(RawFrame.Pong, []),
            RawWebSocket.EncodeFrame(RawFrame.Binary, new byte[70_000]),
        })
        {
            // A control frame is held whole; a data frame only up to the end of its header (2 + 8 + 4 bytes).
            var unit = (frame[0] & 0x08) != 0 ? frame.Length : 14;
            most = Math.Max(most, await TrickleAsync(unit, frame, b => client.SendRawAsync(b), relay));
            if (unit < frame.Length)
            {
                await client.SendRawAsync(frame.AsMemory(unit));
            }

            var arrived = await backendReader.ReceiveFrameAsync(Eventually.DefaultTimeout);
            Assert.NotNull(arrived);
            Assert.Equal(frame[0] & 0x0F, arrived.Opcode);
            Assert.Equal(frame.Length, arrived.Wire.Length);
        }

        // Backend → client: the largest unmasked control frame (127 bytes) and a Close with a reason.
        foreach (var frame in new[]
        {
            RawWebSocket.EncodeFrame(RawFrame.Ping, payload, mask: false),
            RawWebSocket.EncodeFrame(RawFrame.Close, RawWebSocket.ClosePayload(1000, new string('r', 120)), mask: false),
        })
        {
            most = Math.Max(most, await TrickleAsync(frame.Length, frame, async b =>
            {
                await backend.WriteAsync(b);
                await backend.FlushAsync();
            }, relay));
            var arrived = await client.ReceiveFrameAsync(Eventually.DefaultTimeout);
            Assert.NotNull(arrived);
            Assert.Equal(frame[0] & 0x0F, arrived.Opcode);
            Assert.Equal(frame[2..], arrived.Payload);
        }

        output.WriteLine($"trickled both directions in {clock.Elapsed.TotalSeconds:0.0} s");
        output.WriteLine($"most bytes held at once: {most} (bound {RelayConnection.MaxHeldPerDirection} per direction)");
        Assert.Equal(130, most);
        Assert.True(most <= RelayConnection.MaxHeldPerDirection);
    }

    // Sends the first `unit` bytes of `frame` one at a time; after each but the last the relay holds exactly
    // the bytes sent so far, after the last none. Returns the most it held.
    private static async Task<int> TrickleAsync(int unit, byte[] frame, Func<ReadOnlyMemory<byte>, Task> send, RelayConnection relay)
    {
        for (var i = 0; i < unit; i++)
        {
            await send(frame.AsMemory(i, 1));
            var expected = i + 1 < unit ? i + 1 : 0;
            await Eventually.UntilAsync(() => relay.HeldBytes == expected, $"the relay to hold {expected} bytes after byte {i + 1} of {unit}", s_step, s_poll);
        }

        return unit - 1;
    }
}
