using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// DESIGN.md: an idle connection holds no pooled buffer. YARP's copy loop rents its 64 KiB buffer
/// only once a zero-byte read completes; if the client's pong to the proxy's ping completed that read,
/// YARP would then sit in a real read, buffer rented, for as long as the connection stays idle (the
/// load harness measured ~64 KB extra per idle connection). The pong must be taken without waking YARP.
/// </summary>
public class RelayConnectionIdleMemoryTests
{
    private const uint ClientMask = 0x0A0B0C0D;

    [Fact]
    public async Task A_pong_alone_does_not_complete_yarps_zero_byte_read_so_no_copy_buffer_is_rented()
    {
        await using var h = RelayHarness.Create(legs: "Client");

        // YARP's loop waits in a zero-byte read (no buffer); the quiet client gets a ping.
        var zero = h.Relay.ReadAsync(Memory<byte>.Empty).AsTask();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var ping = h.SinglePingToClient();

        h.Client.Send(WireFrame.Pong(ping.Payload, mask: ClientMask).ToBytes());
        await WaitUntilAsync(() => h.Relay.LastRtt(ReaperProxy.Relay.Leg.Client) is not null || zero.IsCompleted);

        // The pong was taken and removed, and YARP's zero-byte read is still waiting: no buffer rented.
        Assert.False(zero.IsCompleted, "a pong alone woke YARP's loop, which then holds its 64 KiB buffer while idle");

        // Real data wakes it, and the next (real) read gets exactly that data.
        var data = WireFrame.Text("real data", mask: ClientMask).ToBytes();
        h.Client.Send(data);
        Assert.Equal(0, await zero.WaitAsync(TimeSpan.FromSeconds(10)));
        var buffer = new byte[64 * 1024];
        var read = await h.Relay.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(data, buffer[..read]);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }
}
