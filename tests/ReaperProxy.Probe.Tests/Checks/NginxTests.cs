using System.Text.Json;
using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Checks;

/// <summary>The same bare server behind a real nginx with <c>proxy_read_timeout 3s</c>: the probe finds a third-party idle timer.</summary>
public sealed class NginxTests
{
    [Fact]
    public async Task Behind_nginx_with_a_3s_read_timeout_idle_live_fails_with_a_cut_at_about_3s()
    {
        await using var server = await TargetServer.StartAsync();
        await using var nginx = await Nginx.StartAsync(server.BaseUri, "3s");
        var outcome = await ProbeRun.RunAsync($"ws://127.0.0.1:{nginx.Port}/ws", "--json", "--check", "idle-live", "--limit", "10s");

        Assert.True(outcome.ExitCode == 1, outcome + "\n--- nginx error log ---\n" + nginx.ErrorLog);
        var idle = outcome.Check("idle-live");
        Assert.Equal("fail", idle.GetProperty("verdict").GetString());
        var connection = idle.GetProperty("connection");
        Assert.InRange(connection.GetProperty("endedAfterSeconds").GetDouble(), 2.8, 5);
        Assert.Equal(JsonValueKind.Null, connection.GetProperty("closeReceived").ValueKind);
        Assert.Matches(@"was cut after [2-5](\.\d+)? s", idle.GetProperty("summary").GetString());
        Assert.Contains("no Close frame", idle.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task With_ReaperProxy_behind_the_same_nginx_its_pings_keep_the_idle_timer_from_cutting_live_idle_users()
    {
        // client -> nginx (proxy_read_timeout 3s) -> ReaperProxy (PingInterval 1s) -> server: the pings are traffic to nginx.
        await using var server = await TargetServer.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(server, "1s");
        await using var nginx = await Nginx.StartAsync(proxy.WebSocketUri, "3s");
        var outcome = await ProbeRun.RunAsync($"ws://127.0.0.1:{nginx.Port}/ws", "--json", "--check", "idle-live", "--check", "silent-client", "--limit", "6s", "--max-reap", "4s");

        Assert.True(outcome.ExitCode == 0, outcome + "\n--- nginx error log ---\n" + nginx.ErrorLog + "\n--- proxy ---\n" + proxy.Log);
        var idle = outcome.Check("idle-live");
        Assert.Equal("still_open", idle.GetProperty("connection").GetProperty("endedBy").GetString());
        Assert.True(idle.GetProperty("connection").GetProperty("pongsSent").GetInt32() >= 4, idle.ToString());
        Assert.Equal("pass", outcome.Verdict("silent-client"));
    }
}
