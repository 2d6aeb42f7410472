using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Cli;

/// <summary>Usage errors exit 2 before any connection, every bad value reported at once.</summary>
public sealed class UsageTests
{
    [Fact]
    public async Task Help_lists_every_check_and_the_exit_codes_and_exits_0()
    {
        var outcome = await ProbeRun.RunAsync("--help");

        Assert.Equal(0, outcome.ExitCode);
        foreach (var check in new[] { "silent-client", "idle-live", "no-close-reply", "client-close-abandoned", "stalled-frame", "slow-reader", "ping-answer" })
        {
            Assert.Contains(check, outcome.Stdout);
        }

        Assert.Contains("Exit codes: 0 every check passed, 1 a check failed, 2 usage or", outcome.Stdout);
        Assert.Contains("--max-reap", outcome.Stdout);
    }

    [Fact]
    public async Task An_http_url_exits_2_and_says_to_write_ws()
    {
        var outcome = await ProbeRun.RunAsync("http://127.0.0.1:1/chat");

        Assert.Equal(2, outcome.ExitCode);
        Assert.Contains("error: URL 'http://127.0.0.1:1/chat' must be an absolute ws:// or wss:// address (for http://, write ws://)", outcome.Stderr);
    }

    [Fact]
    public async Task Every_bad_value_is_reported_at_once()
    {
        var outcome = await ProbeRun.RunAsync(
            "ws://127.0.0.1:1/", "--check", "silent", "--limit", "5", "--max-reap", "soon", "--limit", "idle-lve=3s", "-H", "Upgrade: h2c", "--pings", "0");

        Assert.Equal(2, outcome.ExitCode);
        Assert.Contains("error: --check 'silent' is not a check; the checks are: silent-client, idle-live,", outcome.Stderr);
        Assert.Contains("error: --limit: '5' has no unit: write e.g. 5s or 5ms", outcome.Stderr);
        Assert.Contains("error: --max-reap: 'soon' is not a duration", outcome.Stderr);
        Assert.Contains("error: --limit 'idle-lve=3s': 'idle-lve' is not a check", outcome.Stderr);
        Assert.Contains("error: -H: the probe writes 'Upgrade' itself", outcome.Stderr);
        Assert.Contains("error: --pings 0: give 1 to 10000", outcome.Stderr);
        Assert.DoesNotContain("refused", outcome.Stderr);
    }

    [Fact]
    public async Task A_missing_url_or_an_unknown_option_exits_2()
    {
        var missing = await ProbeRun.RunAsync();
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("error: ", missing.Stderr);

        var unknown = await ProbeRun.RunAsync("ws://127.0.0.1:1/", "--max-reep", "3s");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("--max-reep", unknown.Stderr);
    }
}
