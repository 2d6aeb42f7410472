using System.Text.Json;
using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Checks;

/// <summary>The probe against a bare Kestrel WebSocket server with keep-alive off: the zombies it keeps are found.</summary>
public sealed class BareServerTests
{
    [Fact]
    public async Task A_bare_server_keeps_the_silent_client_the_stalled_frame_and_the_unanswered_close_and_the_report_says_so()
    {
        await using var server = await TargetServer.StartAsync();
        var outcome = await ProbeRun.RunAsync(
            server.WebSocketUri.ToString(), "--json",
            "--check", "silent-client", "--check", "stalled-frame", "--check", "no-close-reply", "--check", "client-close-abandoned",
            "--close-trigger", "close", "--limit", "3s", "--max-reap", "2s", "--max-stall", "2s", "--max-close-wait", "2s");

        Assert.True(outcome.ExitCode == 1, outcome.ToString());
        Assert.Equal(1, outcome.Json.GetProperty("exitCode").GetInt32());

        var silent = outcome.Check("silent-client");
        Assert.Equal("fail", silent.GetProperty("verdict").GetString());
        Assert.Equal("still_open", silent.GetProperty("connection").GetProperty("endedBy").GetString());
        Assert.Equal(JsonValueKind.Null, silent.GetProperty("connection").GetProperty("endedAfterSeconds").ValueKind);
        Assert.Equal(0, silent.GetProperty("connection").GetProperty("pingsReceived").GetInt32());
        Assert.Contains("was still held open after", silent.GetProperty("summary").GetString());
        Assert.Contains("keeps zombies", silent.GetProperty("summary").GetString());
        Assert.InRange(silent.GetProperty("elapsedSeconds").GetDouble(), 2.9, 4);

        var stalled = outcome.Check("stalled-frame");
        Assert.Equal("fail", stalled.GetProperty("verdict").GetString());
        Assert.Equal("still_open", stalled.GetProperty("connection").GetProperty("endedBy").GetString());

        // The server's CloseAsync waits for the reply without a bound of its own: the connection stays.
        var noReply = outcome.Check("no-close-reply");
        Assert.Equal("fail", noReply.GetProperty("verdict").GetString());
        var close = noReply.GetProperty("connection").GetProperty("closeReceived");
        Assert.Equal(1000, close.GetProperty("code").GetInt32());
        Assert.Equal("bye", close.GetProperty("reason").GetString());
        Assert.Equal("still_open", noReply.GetProperty("connection").GetProperty("endedBy").GetString());

        // Kestrel does end TCP after answering a client's Close, reading or not.
        var abandoned = outcome.Check("client-close-abandoned");
        Assert.Equal("pass", abandoned.GetProperty("verdict").GetString());
        Assert.InRange(abandoned.GetProperty("details").GetProperty("closeWaitSeconds").GetDouble(), 0, 2);
        Assert.Equal("tcp_info", abandoned.GetProperty("details").GetProperty("watchedBy").GetString());
    }

    [Fact]
    public async Task The_table_shows_the_same_verdicts_as_the_json_report()
    {
        await using var server = await TargetServer.StartAsync();
        var outcome = await ProbeRun.RunAsync(
            server.WebSocketUri.ToString(), "--json", "--limit", "2s", "--max-reap", "1s", "--max-stall", "1s", "--max-close-wait", "1s",
            "--echo", "hello", "--read-rate", "64k", "--read-bytes", "16k");

        var table = outcome.Stderr.Split('\n').Where(l => l.StartsWith('│')).Select(l => l.Split('│', StringSplitOptions.TrimEntries)).ToList();
        var checks = outcome.Json.GetProperty("checks").EnumerateArray().ToList();
        Assert.Equal(7, checks.Count);
        foreach (var check in checks)
        {
            var name = check.GetProperty("name").GetString()!;
            var row = table.SingleOrDefault(cells => cells[1] == name) ?? throw new Xunit.Sdk.XunitException($"no table row for {name}:\n{outcome}");
            Assert.Equal(check.GetProperty("verdict").GetString(), row[2].ToLowerInvariant());
            Assert.StartsWith(row[3], check.GetProperty("measured").GetString());
        }

        var summary = outcome.Json.GetProperty("summary");
        var exitCode = outcome.Json.GetProperty("exitCode").GetInt32();
        Assert.Equal(outcome.ExitCode, exitCode);
        Assert.Contains($"{summary.GetProperty("pass").GetInt32()} pass", outcome.Stderr);
        Assert.Contains($"exit code {exitCode}", outcome.Stderr);
    }

    [Fact]
    public async Task Every_check_passing_exits_0_and_a_check_that_proves_nothing_exits_3()
    {
        await using var server = await TargetServer.StartAsync();

        var passing = await ProbeRun.RunAsync(server.WebSocketUri.ToString(), "--check", "ping-answer", "--check", "idle-live", "--limit", "1s", "--json");
        Assert.True(passing.ExitCode == 0, passing.ToString());
        var ping = passing.Check("ping-answer");
        Assert.Equal("pass", ping.GetProperty("verdict").GetString());
        Assert.Equal(10, ping.GetProperty("details").GetProperty("answered").GetInt32());
        Assert.True(ping.GetProperty("details").GetProperty("rttP99Ms").GetDouble() >= ping.GetProperty("details").GetProperty("rttP50Ms").GetDouble());

        // No trigger: this server never closes on its own, so there is no closing handshake to leave unanswered.
        var nothing = await ProbeRun.RunAsync(server.WebSocketUri.ToString(), "--check", "no-close-reply", "--limit", "1s", "--json");
        Assert.True(nothing.ExitCode == 3, nothing.ToString());
        Assert.Equal("inconclusive", nothing.Verdict("no-close-reply"));
        Assert.Contains("--close-trigger", nothing.Check("no-close-reply").GetProperty("summary").GetString());
    }
}
