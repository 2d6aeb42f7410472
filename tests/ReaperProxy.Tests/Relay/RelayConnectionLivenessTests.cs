using System.Text;
using ReaperProxy.Framing;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// Dead legs and live ones on a fake clock. The test is the shared heartbeat (<c>OnTick</c>), YARP's two
/// copy loops and both peers. A read is kept pending at every tick, as YARP's client loop always has one.
/// </summary>
public class RelayConnectionLivenessTests
{
    private const uint ClientMask = 0x0F1E2D3C;
    private const int ReapedEventId = 2001;
    private const int ZombieObservedEventId = 2002;
    private static readonly TimeSpan s_oneTick = TimeSpan.FromTicks(1);

    [Fact]
    public async Task A_client_that_answers_nothing_is_dead_after_ping_interval_plus_pong_timeout_and_the_backend_gets_close_1001()
    {
        await using var h = RelayHarness.Create();
        var read = await PingBothAndAnswerOnlyTheBackendAsync(h);
        var clientPing = h.SinglePingToClient();

        h.AdvanceAndTick(RelayHarness.PongTimeout - s_oneTick);

        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.Equal("open", h.Relay.State);

        h.AdvanceAndTick(s_oneTick);

        Assert.Equal(CloseReason.ClientDead, h.Relay.Reason);
        var close = SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Close);
        Assert.NotNull(close.MaskKey);
        Assert.Equal(1001, FrameWriter.ReadCloseCode(close.Payload));
        Assert.Equal("client unresponsive", Encoding.UTF8.GetString(close.Payload.AsSpan(2)));
        Assert.Equal(clientPing.ToBytes(), h.Client.Received);
        var reaped = Assert.Single(h.LogsWithId(ReapedEventId));
        Assert.Contains("client leg dead", reaped.Message, StringComparison.Ordinal);

        // The backend answers the Close: both connections end; nothing goes to the dead client.
        read = h.ToBackendAsync();
        await h.FromBackendAsync(WireFrame.Close(1001).ToBytes());

        Assert.True(h.Lifetime.Aborted);
        Assert.Equal(clientPing.ToBytes(), h.Client.Received);
    }

    [Fact]
    public async Task A_reaped_connection_ends_after_close_timeout_when_the_survivor_never_answers_the_close()
    {
        await using var h = RelayHarness.Create();
        var read = await PingBothAndAnswerOnlyTheBackendAsync(h);
        h.AdvanceAndTick(RelayHarness.PongTimeout);
        SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Close);
        read = h.ToBackendAsync();

        h.AdvanceAndTick(RelayHarness.CloseTimeout - s_oneTick);

        Assert.False(h.Lifetime.Aborted);

        h.AdvanceAndTick(s_oneTick);

        Assert.True(h.Lifetime.Aborted);
        Assert.Equal(CloseReason.ClientDead, h.Relay.Reason);
    }

    [Fact]
    public async Task A_backend_that_answers_nothing_is_dead_after_ping_interval_plus_pong_timeout_and_the_client_gets_close_1001()
    {
        await using var h = RelayHarness.Create();
        var read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Ping);
        var clientPing = h.SinglePingToClient();
        read = h.ToBackendAsync();
        var stillHere = WireFrame.Text("still here", mask: ClientMask).ToBytes();
        h.Client.Send(WireFrame.Concat([WireFrame.Pong(clientPing.Payload, ClientMask)]));
        h.Client.Send(stillHere);
        Assert.Equal(stillHere, await RelayHarness.Guard(read));
        read = h.ToBackendAsync();

        h.AdvanceAndTick(RelayHarness.PongTimeout - s_oneTick);

        Assert.Equal(CloseReason.None, h.Relay.Reason);

        h.AdvanceAndTick(s_oneTick);

        Assert.Equal(CloseReason.BackendDead, h.Relay.Reason);
        var toClient = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal([WebSocketOpcode.Ping, WebSocketOpcode.Close], toClient.Select(f => f.Opcode));
        Assert.Null(toClient[1].MaskKey);
        Assert.Equal(1001, FrameWriter.ReadCloseCode(toClient[1].Payload));
        Assert.Equal("backend unresponsive", Encoding.UTF8.GetString(toClient[1].Payload.AsSpan(2)));

        // The client answers the Close: the relay cancels the token YARP's forwarder runs under, which
        // ends both copy loops; nothing more went to the dead backend.
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = h.Relay.FinishToken.Register(() => finished.TrySetResult());
        h.Client.Send(WireFrame.Close(1001, mask: ClientMask).ToBytes());

        await finished.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(CloseReason.BackendDead, h.Relay.Reason);
    }

    [Fact]
    public async Task In_observe_mode_silent_legs_are_recorded_but_nothing_is_closed()
    {
        await using var h = RelayHarness.Create(mode: "Observe");
        var read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Ping);
        read = h.ToBackendAsync();

        h.AdvanceAndTick(RelayHarness.PongTimeout);

        var observed = h.LogsWithId(ZombieObservedEventId);
        Assert.Equal(2, observed.Count);
        Assert.Contains(observed, r => r.Message.Contains("client leg silent", StringComparison.Ordinal));
        Assert.Contains(observed, r => r.Message.Contains("backend leg silent", StringComparison.Ordinal));
        Assert.Empty(h.LogsWithId(ReapedEventId));

        // Never closing, and no second ping while the first is out (its late pong, or any byte, revives the leg).
        for (var i = 0; i < 10; i++)
        {
            h.AdvanceAndTick(RelayHarness.PongTimeout);
        }

        Assert.Single(ReferenceFrameReader.ReadAll(h.Client.Received), f => f.Opcode == WebSocketOpcode.Ping);
        Assert.False(read.IsCompleted, "no second ping toward the backend while the first is outstanding");
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.Equal("open", h.Relay.State);
        Assert.False(h.Lifetime.Aborted);
        Assert.Equal(2, h.LogsWithId(ZombieObservedEventId).Count);
    }

    [Fact]
    public async Task Legs_that_answer_every_ping_are_never_declared_dead()
    {
        await using var h = RelayHarness.Create();
        var read = h.ToBackendAsync();
        var roundTrip = TimeSpan.FromSeconds(2);
        for (var cycle = 0; cycle < 20; cycle++)
        {
            // Quiet for exactly PingInterval since the last answers: both legs get a ping.
            h.AdvanceAndTick(RelayHarness.PingInterval);
            var backendPing = SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Ping);
            read = h.ToBackendAsync();
            var clientPing = ReferenceFrameReader.ReadAll(h.Client.Received)[^1];
            Assert.Equal(WebSocketOpcode.Ping, clientPing.Opcode);

            h.AdvanceAndTick(roundTrip);
            await h.FromBackendAsync(WireFrame.Pong(backendPing.Payload).ToBytes());
            var marker = WireFrame.Text($"cycle {cycle}", mask: ClientMask).ToBytes();
            h.Client.Send(WireFrame.Pong(clientPing.Payload, ClientMask).ToBytes());
            h.Client.Send(marker);
            Assert.Equal(marker, await RelayHarness.Guard(read));
            read = h.ToBackendAsync();
            h.AdvanceAndTick(TimeSpan.Zero);
        }

        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.False(h.Lifetime.Aborted);
        Assert.Empty(h.LogsWithId(ReapedEventId));
        var toClient = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal(20, toClient.Count);
        Assert.All(toClient, f => Assert.Equal(WebSocketOpcode.Ping, f.Opcode));
        Assert.Equal(roundTrip, h.Relay.LastRtt(Leg.Client));
        Assert.Equal(roundTrip, h.Relay.LastRtt(Leg.Backend));
    }

    [Fact]
    public async Task Busy_legs_get_no_pings()
    {
        await using var h = RelayHarness.Create();
        var read = h.ToBackendAsync();
        var fromBackend = new List<WireFrame>();

        // Each leg sends something every 3 s for 90 s: never quiet for PingInterval.
        for (var i = 0; i < 30; i++)
        {
            for (var s = 0; s < 3; s++)
            {
                h.AdvanceAndTick(TimeSpan.FromSeconds(1));
            }

            var backendData = WireFrame.Text($"b{i}");
            fromBackend.Add(backendData);
            await h.FromBackendAsync(backendData.ToBytes());
            var clientData = WireFrame.Text($"c{i}", mask: ClientMask).ToBytes();
            h.Client.Send(clientData);
            Assert.Equal(clientData, await RelayHarness.Guard(read));
            read = h.ToBackendAsync();
        }

        h.AdvanceAndTick(TimeSpan.FromSeconds(3));
        Assert.Equal(WireFrame.Concat(fromBackend), h.Client.Received);
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.Null(h.Relay.LastRtt(Leg.Client));
        Assert.Null(h.Relay.LastRtt(Leg.Backend));
    }

    [Fact]
    public async Task A_busy_backend_gets_no_ping_while_the_quiet_client_does()
    {
        await using var h = RelayHarness.Create();
        var read = h.ToBackendAsync();
        for (var i = 0; i < 4; i++)
        {
            h.AdvanceAndTick(TimeSpan.FromSeconds(3));
            await h.FromBackendAsync(WireFrame.Text($"b{i}").ToBytes());
        }

        // 12 s: the client has been quiet past PingInterval, the backend spoke 0 s ago.
        var toClient = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal(WebSocketOpcode.Ping, Assert.Single(toClient, f => f.Opcode == WebSocketOpcode.Ping).Opcode);

        // The read YARP has pending gets no ping: the next thing out of it is the client's data.
        var clientData = WireFrame.Text("c", mask: ClientMask).ToBytes();
        h.Client.Send(clientData);
        Assert.Equal(clientData, await RelayHarness.Guard(read));
    }

    /// <summary>
    /// Both legs quiet for PingInterval get a ping; only the backend answers. Returns the pending read
    /// of what goes to the backend next.
    /// </summary>
    private static async Task<Task<byte[]>> PingBothAndAnswerOnlyTheBackendAsync(RelayHarness h)
    {
        var read = h.ToBackendAsync();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        var backendPing = SingleFrame(await RelayHarness.Guard(read), WebSocketOpcode.Ping);
        read = h.ToBackendAsync();
        await h.FromBackendAsync(WireFrame.Pong(backendPing.Payload).ToBytes());
        return read;
    }

    private static WireFrame SingleFrame(byte[] bytes, byte opcode)
    {
        var frame = Assert.Single(ReferenceFrameReader.ReadAll(bytes));
        Assert.Equal(opcode, frame.Opcode);
        return frame;
    }
}
