using System.Diagnostics;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// A reload never unbounds what is under way: a closing handshake or a reap that started under Enforce
/// still ends within its bound after a reload to Off. And a connection opened under Off stays plain
/// pass-through after a reload to Enforce.
/// </summary>
public sealed class ReloadMidHandshakeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_reload_to_Off_during_a_closing_handshake_leaves_it_bounded_by_CloseTimeout()
    {
        // Only the client is pinged, and not within the test: the silent backend is not reaped, only
        // the handshake bound acts.
        var heartbeat = new Heartbeat(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat, legs: "Client");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/silent"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        await client.SendFrameAsync(RawFrame.Close, RawWebSocket.ClosePayload(1000, "bye"));
        var sinceClose = Stopwatch.StartNew();

        // While the handshake is under way (pacing only: it does not make anything correct).
        await Task.Delay(TimeSpan.FromMilliseconds(200));
        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set("Reaper:Heartbeat:Mode", "Off")));
        Assert.True(sinceClose.Elapsed < heartbeat.CloseTimeout, $"the reload must land while the handshake is under way (it took until {sinceClose.Elapsed})");

        var got = await client.ReadUntilEndAsync(Remaining(heartbeat.CloseTimeout + Heartbeat.Slack, sinceClose));
        Assert.True(got.Frames.Count == 1 && got.Frames[0].Opcode == RawFrame.Close && got.Frames[0].CloseCode == 1000 && got.Ended,
            $"the client must get the proxy's Close 1000 and its connection must end within CloseTimeout + slack of its Close; got {got} after {sinceClose.Elapsed}");
        Assert.True((await fixture.Probe.Outcome.WaitAsync(Heartbeat.Slack)).Aborted, "the backend's connection must end too");
    }

    [Fact]
    public async Task A_reload_to_Off_while_a_dead_backend_is_being_reaped_leaves_the_reap_bounded_by_CloseTimeout()
    {
        var heartbeat = new Heartbeat(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(1));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat);

        // A live client (it answers every ping) in front of a backend that never reads: the backend is reaped.
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/silent"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        var close = await ReceiveCloseAnsweringPingsAsync(client, heartbeat.Deadline + Heartbeat.Slack);
        var sinceClose = Stopwatch.StartNew();
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("backend unresponsive", close.CloseReason);

        // The reap is under way (the client is told, its answer awaited): reload to Off now, and never answer.
        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set("Reaper:Heartbeat:Mode", "Off")));
        Assert.True(sinceClose.Elapsed < heartbeat.CloseTimeout, $"the reload must land while the reap is under way (it took until {sinceClose.Elapsed})");

        var got = await client.ReadUntilEndAsync(Remaining(heartbeat.CloseTimeout + Heartbeat.Slack, sinceClose));
        Assert.True(got.Frames.Count == 0 && got.Ended,
            $"the reaped connection must end within CloseTimeout + slack of the proxy's Close; got {got} after {sinceClose.Elapsed}");
        Assert.True((await fixture.Probe.Outcome.WaitAsync(Heartbeat.Slack)).Aborted, "the dead backend's connection must end too");
        Assert.Single(fixture.Logs.WithEventId(2001));
    }

    [Fact]
    public async Task A_connection_opened_under_Off_stays_plain_pass_through_after_a_reload_to_Enforce()
    {
        var heartbeat = Heartbeat.Fast;
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat, mode: "Off");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(ReloadOutcome.Applied, await fixture.Proxy.ReloadAsync(fixture.Config.Clone().Set("Reaper:Heartbeat:Mode", "Enforce")));

        // A silent raw client, twice the reaping deadline: never pinged, never reaped.
        await Assert.ThrowsAsync<TimeoutException>(() => client.ReceiveFrameAsync(2 * heartbeat.Deadline));
        Assert.False(fixture.Probe.Outcome.IsCompleted, "the backend's WebSocket must still be open");
        Assert.Empty(fixture.Logs.WithEventId(2001));

        await client.SendFrameAsync(RawFrame.Text, "still plain"u8);
        var echo = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("still plain", Encoding.UTF8.GetString(echo!.Payload));
    }

    private static TimeSpan Remaining(TimeSpan bound, Stopwatch since)
    {
        var left = bound - since.Elapsed;
        return left > TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1);
    }

    // A live raw client: answers the proxy's pings until a Close arrives.
    private static async Task<RawFrame> ReceiveCloseAnsweringPingsAsync(RawWebSocket client, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        for (var i = 0; i < 1000; i++)
        {
            var left = deadline - DateTime.UtcNow;
            var frame = await client.ReceiveFrameAsync(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
            Assert.True(frame is not null, "the client's connection ended before any Close");
            if (frame!.Opcode == RawFrame.Close)
            {
                return frame;
            }

            Assert.Equal(RawFrame.Ping, frame.Opcode);
            await client.SendFrameAsync(RawFrame.Pong, frame.Payload);
        }

        throw new TimeoutException("no Close among 1000 frames");
    }
}
