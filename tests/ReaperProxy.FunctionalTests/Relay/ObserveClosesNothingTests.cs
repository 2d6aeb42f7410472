using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>Observe mode closes nothing, the closing-handshake bound included: it logs and counts what Enforce would have done.</summary>
public sealed class ObserveClosesNothingTests(ITestOutputHelper output)
{
    // Pings far away: no leg is judged on its silence during the test, only the handshake bound is at stake.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(600));

    [Fact]
    public async Task Observe_mode_leaves_an_unanswered_client_close_unanswered_logs_2014_and_counts_a_close_timeout_zombie()
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, mode: "Observe");
        var factory = fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var observed = new MetricCollector<long>(factory, "ReaperProxy", "reaper.zombies.observed");
        using var reaped = new MetricCollector<long>(factory, "ReaperProxy", "reaper.connections.reaped");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/silent"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        // The backend never reads, so it never answers.
        await client.SendFrameAsync(RawFrame.Close, RawWebSocket.ClosePayload(1000, "bye"));

        // Well past CloseTimeout: the proxy did not answer for the backend, and ended nothing.
        var got = await client.ReadUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.True(got.Frames.Count == 0 && !got.Ended, $"Observe mode must close nothing; the client got {got}");
        Assert.False(fixture.Probe.Outcome.IsCompleted, "Observe mode must not end the backend's connection");

        var logged = Assert.Single(fixture.Logs.WithEventId(2014));
        Assert.Contains("route all", logged.Message);
        Assert.Contains(observed.GetMeasurementSnapshot(), m =>
            (Tag(m.Tags, "leg"), Tag(m.Tags, "reason"), Tag(m.Tags, "route"), Tag(m.Tags, "cluster")) == ("backend", "close_timeout", "all", "backend"));
        Assert.Empty(fixture.Logs.WithEventId(2005));
        Assert.Empty(reaped.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task Observe_mode_relays_a_completed_closing_handshake_untouched()
    {
        // The harness check for the test above: a handshake the backend answers is relayed both ways.
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, mode: "Observe");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/record"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        await client.SendFrameAsync(RawFrame.Close, RawWebSocket.ClosePayload(4001, "app reason"));

        var answer = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(RawFrame.Close, answer!.Opcode);
        Assert.Equal(4001, answer.CloseCode);
        Assert.Equal("app reason", answer.CloseReason);
        var outcome = await fixture.Probe.Outcome.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(4001, (int?)outcome.CloseStatus);
        Assert.Empty(fixture.Logs.WithEventId(2014));
        Assert.Empty(fixture.Logs.WithEventId(2005));
    }

    private static string? Tag(IReadOnlyDictionary<string, object?> tags, string key) => tags.TryGetValue(key, out var v) ? v?.ToString() : null;
}
