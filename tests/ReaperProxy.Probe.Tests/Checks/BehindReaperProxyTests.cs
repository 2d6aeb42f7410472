using System.Text.Json;
using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Checks;

/// <summary>The same bare server behind a real ReaperProxy with a 1 s policy: what the probe found is fixed.</summary>
public sealed class BehindReaperProxyTests
{
    // PingInterval + PongTimeout + 25% of the smaller (README, "The reaping deadline"), for the 1 s policy.
    private const double ReapDeadline = 2.25;

    // What a loaded 2-core CI machine may add to any deadline here.
    private const double Slack = 2.5;

    [Fact]
    public async Task Behind_ReaperProxy_the_zombies_are_reaped_within_the_deadline_live_idle_users_stay_and_closes_are_bounded()
    {
        await using var server = await TargetServer.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(server, "1s");
        var outcome = await ProbeRun.RunAsync(
            proxy.WebSocketUri.ToString(), "--json", "--close-trigger", "close", "--echo", "hello", "--read-rate", "32k", "--read-bytes", "64k",
            "--limit", "6s", "--max-reap", $"{ReapDeadline + Slack}s", "--max-stall", $"{ReapDeadline + Slack}s", "--max-close-wait", $"{1 + Slack}s");

        Assert.True(outcome.ExitCode == 0, outcome + "\n--- proxy ---\n" + proxy.Log);

        var silent = outcome.Check("silent-client");
        Assert.Equal("pass", silent.GetProperty("verdict").GetString());
        var connection = silent.GetProperty("connection");
        Assert.InRange(connection.GetProperty("endedAfterSeconds").GetDouble(), 1.5, ReapDeadline + Slack);
        Assert.True(connection.GetProperty("pingsReceived").GetInt32() >= 1, "the proxy's ping is counted");
        Assert.InRange(connection.GetProperty("pingTimesSeconds")[0].GetDouble(), 0.8, 1 + Slack);
        Assert.Equal(0, connection.GetProperty("pongsSent").GetInt32());
        Assert.Contains("client_dead", await MetricsAsync(proxy));

        var idle = outcome.Check("idle-live");
        Assert.Equal("pass", idle.GetProperty("verdict").GetString());
        Assert.True(idle.GetProperty("connection").GetProperty("pongsSent").GetInt32() >= 3, idle.ToString());

        // The server's Close is forwarded, the probe never answers, the proxy's CloseTimeout (1 s) ends it.
        var noReply = outcome.Check("no-close-reply");
        Assert.Equal("pass", noReply.GetProperty("verdict").GetString());
        Assert.Equal(1000, noReply.GetProperty("connection").GetProperty("closeReceived").GetProperty("code").GetInt32());
        Assert.InRange(noReply.GetProperty("details").GetProperty("closeWaitSeconds").GetDouble(), 0.8, 1 + Slack);

        var abandoned = outcome.Check("client-close-abandoned");
        Assert.Equal("pass", abandoned.GetProperty("verdict").GetString());
        Assert.InRange(abandoned.GetProperty("details").GetProperty("closeWaitSeconds").GetDouble(), 0, 1 + Slack);

        var stalled = outcome.Check("stalled-frame");
        Assert.Equal("pass", stalled.GetProperty("verdict").GetString());
        Assert.InRange(stalled.GetProperty("connection").GetProperty("endedAfterSeconds").GetDouble(), 1.5, ReapDeadline + Slack);

        Assert.Equal("pass", outcome.Verdict("ping-answer"));
        var slow = outcome.Check("slow-reader");
        Assert.Equal("pass", slow.GetProperty("verdict").GetString());
        Assert.Equal(JsonValueKind.Null, slow.GetProperty("connection").GetProperty("closeReceived").ValueKind);
    }

    [Fact]
    public async Task A_reader_slower_than_the_policy_allows_is_cut_by_ReaperProxy_and_slow_reader_fails()
    {
        // 200 B/s of the server's own stream through a 4 KiB receive buffer: the kernel acknowledges new bytes every
        // few seconds, more than the 1 s policy's PingInterval + PongTimeout (README, "The slowest consumer that
        // counts as alive"), so the proxy judges the slow client dead (no_progress).
        await using var server = await TargetServer.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(server, "1s");
        var outcome = await ProbeRun.RunAsync(
            new Uri(proxy.WebSocketUri, "/stream").ToString(), "--json", "--check", "slow-reader", "--read-rate", "200", "--read-bytes", "64k", "--limit", "8s");

        Assert.True(outcome.ExitCode == 1, outcome + "\n--- proxy ---\n" + proxy.Log);
        var slow = outcome.Check("slow-reader");
        Assert.Equal("fail", slow.GetProperty("verdict").GetString());
        Assert.Contains("was cut", slow.GetProperty("summary").GetString());
        Assert.True(slow.GetProperty("details").GetProperty("bytesReadSlowly").GetInt64() > 0, slow.ToString());
        Assert.Contains("client leg dead (no_progress)", proxy.Log);

        // ReaperProxy ends the reaped client's socket in order: its FIN waits behind the data already in the
        // kernel's send buffer, so a slow reader meets the end only once it has read that (the probe looks for it
        // at full speed after its slow phase).
        Assert.True(slow.GetProperty("details").GetProperty("endQueuedBehindData").GetBoolean(), slow.ToString());
    }

    [Fact]
    public async Task An_IdleTimeout_in_ReaperProxy_cuts_live_idle_users_and_idle_live_reports_its_Close_1001_idle()
    {
        await using var server = await TargetServer.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(server, "1s", idleTimeout: "2s");
        var outcome = await ProbeRun.RunAsync(proxy.WebSocketUri.ToString(), "--json", "--check", "idle-live", "--limit", "8s");

        Assert.True(outcome.ExitCode == 1, outcome + "\n--- proxy ---\n" + proxy.Log);
        var idle = outcome.Check("idle-live");
        Assert.Equal("fail", idle.GetProperty("verdict").GetString());
        var close = idle.GetProperty("connection").GetProperty("closeReceived");
        Assert.Equal(1001, close.GetProperty("code").GetInt32());
        Assert.Equal("idle", close.GetProperty("reason").GetString());
        Assert.InRange(close.GetProperty("afterSeconds").GetDouble(), 1.9, 2 + Slack);
        Assert.Equal(1001, idle.GetProperty("connection").GetProperty("closeSent").GetProperty("code").GetInt32());
        Assert.Contains("with Close 1001 'idle'", idle.GetProperty("summary").GetString());
    }

    private static async Task<string> MetricsAsync(ProxyUnderTest proxy)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await http.GetStringAsync(new Uri(proxy.AdminUri, "metrics"));
    }
}
