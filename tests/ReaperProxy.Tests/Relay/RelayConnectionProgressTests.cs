using System.Text;
using ReaperProxy.Framing;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// Liveness is consumption, not the duration of one write. Over in-memory streams there is no kernel
/// counter, so progress is a completed write toward the leg (toward the backend: YARP coming back for
/// the next read). PingInterval 10 s + PongTimeout 5 s: a leg is dead after 15 s without progress.
/// </summary>
public class RelayConnectionProgressTests
{
    private const int ReapedEventId = 2001;
    private const int ZombieObservedEventId = 2002;
    private static readonly TimeSpan s_window = RelayHarness.PingInterval + RelayHarness.PongTimeout;
    private static readonly TimeSpan s_oneTick = TimeSpan.FromTicks(1);

    [Fact]
    public async Task A_write_toward_the_client_that_makes_no_progress_for_the_window_reaps_it_as_no_progress()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        var read = h.ToBackendAsync();
        h.Client.HoldWrites();
        var write = h.Relay.WriteAsync(WireFrame.Binary(1000).ToBytes()).AsTask();
        Assert.True(h.Client.WriteHeld);

        h.AdvanceAndTick(s_window - s_oneTick);
        Assert.Equal(CloseReason.None, h.Relay.Reason);

        h.AdvanceAndTick(s_oneTick);

        Assert.Equal(CloseReason.ClientDead, h.Relay.Reason);
        var reaped = Assert.Single(h.LogsWithId(ReapedEventId));
        Assert.Contains("client leg dead (no_progress)", reaped.Message, StringComparison.Ordinal);
        var close = Assert.Single(ReferenceFrameReader.ReadAll(await RelayHarness.Guard(read)));
        Assert.Equal(WebSocketOpcode.Close, close.Opcode);
        Assert.Equal("client unresponsive", Encoding.UTF8.GetString(close.Payload.AsSpan(2)));

        // The stuck write is abandoned, not left hanging.
        await RelayHarness.Guard(write);
    }

    [Fact]
    public async Task A_client_that_keeps_consuming_a_long_download_is_never_reaped_however_long_one_message_takes()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();

        // One 64 MiB frame, delivered in 64 KiB writes, each taking 4 s (a 16 KiB/s reader): 70 minutes
        // of one message, and the client never says a word.
        var chunk = new byte[64 * 1024];
        await h.FromBackendAsync(WireFrame.Header(fin: true, 0, WebSocketOpcode.Binary, 64L * 1024 * 1024, maskKey: null));
        for (var i = 0; i < 1024; i++)
        {
            h.Client.HoldWrites();
            var write = h.Relay.WriteAsync(chunk).AsTask();
            h.AdvanceAndTick(TimeSpan.FromSeconds(2));
            h.AdvanceAndTick(TimeSpan.FromSeconds(2));
            h.Client.ReleaseWrites();
            await RelayHarness.Guard(write);
        }

        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.Empty(h.LogsWithId(ReapedEventId));

        // The message arrived whole; the ping asked for while it streamed went out at its end.
        var frames = ReferenceFrameReader.ReadAll(h.Client.Received);
        Assert.Equal([WebSocketOpcode.Binary, WebSocketOpcode.Ping], frames.Select(f => f.Opcode));
        Assert.Equal(64 * 1024 * 1024, frames[0].Payload.Length);
    }

    [Fact]
    public async Task A_ping_queued_behind_data_the_client_still_consumes_is_not_unanswered_until_consumption_stops()
    {
        await using var h = RelayHarness.Create(legs: "Client");
        h.KeepReadPending();
        h.AdvanceAndTick(RelayHarness.PingInterval);
        h.SinglePingToClient();

        // The client is busy reading what came before the ping: writes toward it keep completing, slowly.
        for (var i = 0; i < 10; i++)
        {
            h.Client.HoldWrites();
            var write = h.Relay.WriteAsync(WireFrame.Binary(100).ToBytes()).AsTask();
            h.AdvanceAndTick(RelayHarness.PongTimeout - TimeSpan.FromSeconds(1));
            h.Client.ReleaseWrites();
            await RelayHarness.Guard(write);
        }

        Assert.Equal(CloseReason.None, h.Relay.Reason);

        // It stops consuming (and never answers): dead PongTimeout after its last progress.
        h.AdvanceAndTick(RelayHarness.PongTimeout - s_oneTick);
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        h.AdvanceAndTick(s_oneTick);

        Assert.Equal(CloseReason.ClientDead, h.Relay.Reason);
        Assert.Contains("client leg dead (pong_timeout)", Assert.Single(h.LogsWithId(ReapedEventId)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_backend_that_takes_nothing_of_what_yarp_writes_to_it_is_reaped_as_no_progress_and_the_client_gets_close_1001()
    {
        await using var h = RelayHarness.Create(legs: "Backend");
        var data = WireFrame.Text("upload", mask: 0x01020304).ToBytes();
        h.Client.Send(data);
        Assert.Equal(data, await h.ToBackendAsync());

        // YARP is writing that to the backend and does not come back for the next read.
        h.AdvanceAndTick(s_window - s_oneTick);
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        h.AdvanceAndTick(s_oneTick);

        Assert.Equal(CloseReason.BackendDead, h.Relay.Reason);
        Assert.Contains("backend leg dead (no_progress)", Assert.Single(h.LogsWithId(ReapedEventId)).Message, StringComparison.Ordinal);
        var close = Assert.Single(ReferenceFrameReader.ReadAll(h.Client.Received));
        Assert.Equal(WebSocketOpcode.Close, close.Opcode);
        Assert.Equal("backend unresponsive", Encoding.UTF8.GetString(close.Payload.AsSpan(2)));
    }

    [Fact]
    public async Task A_slow_backend_that_keeps_taking_an_upload_is_never_reaped_and_its_backpressure_does_not_make_the_client_look_dead()
    {
        await using var h = RelayHarness.Create();
        var chunk = WireFrame.Binary(1000, mask: 0x01020304).ToBytes();
        for (var i = 0; i < 100; i++)
        {
            // Each of YARP's writes to the backend takes 12 s: longer than PingInterval, shorter than the
            // window. The backend is silent, so it gets pings, queued behind the upload; it never
            // answers them, yet it lives: it keeps taking bytes.
            h.Client.Send(chunk);
            var toBackend = await h.ToBackendAsync();
            while (ReferenceFrameReader.ReadAll(toBackend) is [{ Opcode: WebSocketOpcode.Ping }])
            {
                toBackend = await h.ToBackendAsync();
            }
            Assert.Equal(chunk, toBackend);
            h.AdvanceAndTick(TimeSpan.FromSeconds(6));
            h.AdvanceAndTick(TimeSpan.FromSeconds(6));
        }

        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.Empty(h.LogsWithId(ReapedEventId));
        Assert.DoesNotContain(ReferenceFrameReader.ReadAll(h.Client.Received), f => f.Opcode == WebSocketOpcode.Close);
    }

    [Fact]
    public async Task In_observe_mode_a_stalled_leg_is_counted_once_and_nothing_is_closed()
    {
        await using var h = RelayHarness.Create(mode: "Observe", legs: "Client");
        h.KeepReadPending();
        h.Client.HoldWrites();
        var write = h.Relay.WriteAsync(WireFrame.Binary(1000).ToBytes()).AsTask();

        for (var i = 0; i < 10; i++)
        {
            h.AdvanceAndTick(s_window);
        }

        var observed = Assert.Single(h.LogsWithId(ZombieObservedEventId));
        Assert.Contains("no_progress", observed.Message, StringComparison.Ordinal);
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        Assert.False(h.Lifetime.Aborted);

        // It resumes: the write completes, the data arrives whole.
        h.Client.ReleaseWrites();
        await RelayHarness.Guard(write);
        Assert.Equal(1004, h.Client.Received.Length);
    }

    [Fact]
    public async Task Data_waiting_in_a_write_toward_a_slow_client_is_not_idle()
    {
        await using var h = RelayHarness.Create(legs: "Client", idleTimeout: "3s");
        h.KeepReadPending();
        h.Client.HoldWrites();
        var write = h.Relay.WriteAsync(WireFrame.Binary(1000).ToBytes()).AsTask();

        // Far past IdleTimeout with the write still waiting (but short of the no-progress window).
        for (var i = 0; i < 12; i++)
        {
            h.AdvanceAndTick(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(CloseReason.None, h.Relay.Reason);

        // Delivered; then the silence after it is idle.
        h.Client.ReleaseWrites();
        await RelayHarness.Guard(write);
        h.AdvanceAndTick(TimeSpan.FromSeconds(2));
        Assert.Equal(CloseReason.None, h.Relay.Reason);
        h.AdvanceAndTick(TimeSpan.FromSeconds(1));
        Assert.Equal(CloseReason.IdleTimeout, h.Relay.Reason);
    }
}
