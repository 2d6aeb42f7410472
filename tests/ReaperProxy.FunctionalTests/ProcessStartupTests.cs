using System.Net;
using System.Net.Sockets;
using ReaperProxy.FunctionalTests.Infrastructure;

namespace ReaperProxy.FunctionalTests;

/// <summary>The executable's exit codes and messages, run as a real process.</summary>
public sealed class ProcessStartupTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-process-tests-");

    public void Dispose() => _dir.Delete(recursive: true);

    public static TheoryData<string> BadConfigurations => [.. s_badCases.Keys];

    private static readonly Dictionary<string, (Func<ProxyConfig, string> Json, string KeyPath, string Problem)> s_badCases = new()
    {
        ["invalid JSON"] = (c => c.ToJson()[..^3], "invalid JSON", "LineNumber"),
        ["unknown policy name"] = (c => c.Route("chat", "/chat", "backend", policy: "chta").Policy("chat", ("PingInterval", "5s")).ToJson(),
            "ReverseProxy:Routes:chat:Metadata:ReaperPolicy", "unknown policy 'chta' (defined under Reaper:Policies: chat)"),
        ["zero duration"] = (c => c.Set("Reaper:Heartbeat:PingInterval", "0s").ToJson(),
            "Reaper:Heartbeat:PingInterval", "'0s' must be a positive duration"),
        ["negative duration"] = (c => c.Policy("fast", ("PongTimeout", "-00:00:02")).ToJson(),
            "Reaper:Policies:fast:PongTimeout", "'-00:00:02' must be a positive duration"),
        ["negative short duration"] = (c => c.Set("Reaper:Heartbeat:CloseTimeout", "-5s").ToJson(),
            "Reaper:Heartbeat:CloseTimeout", "'-5s' must be a positive duration"),
        ["route without a cluster"] = (c => c.Route("orphan", "/orphan", clusterId: "").Remove("ReverseProxy:Routes:orphan:ClusterId").ToJson(),
            "ReverseProxy:Routes:orphan:ClusterId", "route has no cluster"),
        ["unknown Mode"] = (c => c.Set("Reaper:Heartbeat:Mode", "Enforcing").ToJson(),
            "Reaper:Heartbeat:Mode", "'Enforcing' is not one of Off, Observe, Enforce"),
        ["misspelt key"] = (c => c.Set("Reaper:Heartbeat:PingIntervall", "5s").ToJson(),
            "Reaper:Heartbeat:PingIntervall", "unknown setting 'PingIntervall'"),
    };

    [Theory]
    [MemberData(nameof(BadConfigurations))]
    public async Task A_bad_configuration_exits_1_within_seconds_naming_the_file_the_key_and_the_problem(string badCase)
    {
        var (json, keyPath, problem) = s_badCases[badCase];
        var file = Write("bad.json", json(GoodConfig()));

        var result = await ProxyProcess.RunAsync(["--config", file, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0"]);

        Assert.False(result.TimedOut, result.ToString());
        Assert.True(result.ExitCode == 1, result.ToString());
        var line = Assert.Single(result.StandardError.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.StartsWith($"error: {file}: {keyPath}", line, StringComparison.Ordinal);
        Assert.Contains(problem, line, StringComparison.Ordinal);
        Assert.Contains("ReaperProxy did not start: 1 configuration problem(s).", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
        Assert.DoesNotContain("ReaperProxy is running", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_problem_in_a_bad_configuration_is_reported_at_once()
    {
        var file = Write("bad.json", GoodConfig()
            .Set("Reaper:Heartbeat:Mode", "Sometimes")
            .Set("Reaper:Heartbeat:PongTimeout", "0ms")
            .Route("lost", "/lost", "no-such-cluster")
            .ToJson());

        var result = await ProxyProcess.RunAsync(["--config", file, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0"]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains($"error: {file}: Reaper:Heartbeat:Mode:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"error: {file}: Reaper:Heartbeat:PongTimeout:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"error: {file}: ReverseProxy:Routes:lost:ClusterId: unknown cluster 'no-such-cluster'", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("3 configuration problem(s)", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task A_start_up_judges_the_configuration_once_each_problem_printed_once()
    {
        var file = Write("bad.json", GoodConfig()
            .Set("Reaper:Heartbeat:Mode", "Sometimes")
            .Set("Reaper:Heartbeat:PongTimeout", "0ms")
            .Set("Reaper:Heartbeat:PingIntervall", "5s")
            .ToJson());

        var result = await ProxyProcess.RunAsync(["--config", file, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0"]);

        Assert.True(result.ExitCode == 1, result.ToString());
        var errors = result.StandardError.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Single(errors, l => l.StartsWith($"error: {file}: Reaper:Heartbeat:Mode:", StringComparison.Ordinal));
        Assert.Single(errors, l => l.StartsWith($"error: {file}: Reaper:Heartbeat:PongTimeout:", StringComparison.Ordinal));
        Assert.Single(errors, l => l.StartsWith($"error: {file}: Reaper:Heartbeat:PingIntervall:", StringComparison.Ordinal));
        Assert.Contains("ReaperProxy did not start: 3 configuration problem(s).", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_config_file_exits_1_naming_the_file()
    {
        var file = Path.Combine(_dir.FullName, "nowhere.json");

        var result = await ProxyProcess.RunAsync(["--config", file, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0"]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains($"error: {file}: file not found", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task Check_config_on_a_good_file_exits_0_and_prints_each_routes_policy()
    {
        var file = Write("good.json", GoodConfig()
            .Policy("chat", ("PingInterval", "5s"), ("PongTimeout", "2s"))
            .Policy("legacy", ("Mode", "Off"))
            .Route("chat", "/chat/{**rest}", "backend", policy: "chat")
            .Route("old", "/old/{**rest}", "backend", policy: "legacy")
            .ToJson());

        var result = await ProxyProcess.RunAsync(["--check-config", file]);

        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.StandardOutput.Split('\n');
        Assert.Contains($"{file}: configuration is valid.", lines);
        Assert.Contains(lines, l => l.StartsWith("route all -> cluster backend, policy (default): Mode=Enforce Legs=Both PingInterval=15s PongTimeout=10s", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("route chat -> cluster backend, policy chat: Mode=Enforce Legs=Both PingInterval=5s PongTimeout=2s", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("route old -> cluster backend, policy legacy: Mode=Off", StringComparison.Ordinal));
        Assert.Equal(3, lines.Count(l => l.StartsWith("route ", StringComparison.Ordinal)));
        Assert.Contains("shutdown drain (Reaper:Drain:Period): Close 1001 spread over 10s; the last closing handshake ends within 15s (Period + the longest CloseTimeout), the process exits by 18s", lines);
        Assert.Equal(string.Empty, result.StandardError);
    }

    [Fact]
    public async Task Check_config_shows_a_drain_that_closes_everything_at_once()
    {
        var file = Write("nodrain.json", GoodConfig().Set("Reaper:Drain:Period", "0").ToJson());

        var result = await ProxyProcess.RunAsync(["--check-config", file]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("shutdown drain (Reaper:Drain:Period): 0, every WebSocket closed at once; the last closing handshake ends within 5s", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_config_on_a_bad_file_exits_1_and_names_the_problem()
    {
        var file = Write("bad.json", GoodConfig().Set("Reaper:Heartbeat:Legs", "Neither").ToJson());

        var result = await ProxyProcess.RunAsync(["--check-config", file]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains($"error: {file}: Reaper:Heartbeat:Legs: 'Neither' is not one of Client, Backend, Both", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("configuration is valid", result.StandardOutput, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task Check_config_on_invalid_JSON_exits_1()
    {
        var file = Write("bad.json", "{ \"Reaper\": ");

        var result = await ProxyProcess.RunAsync(["--check-config", file]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains($"error: {file}: invalid JSON", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Theory]
    [InlineData("--frobnicate")]
    [InlineData("--config")]
    [InlineData("stray.json")]
    public async Task A_usage_error_exits_2_with_the_usage_on_stderr(string arg)
    {
        var result = await ProxyProcess.RunAsync([arg]);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.StartsWith("error: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("Usage: ReaperProxy", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.StandardOutput);
    }

    [Fact]
    public async Task Help_exits_0_with_the_usage_on_stdout()
    {
        var result = await ProxyProcess.RunAsync(["--help"]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.StartsWith("Usage: ReaperProxy", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.StandardError);
    }

    [Fact]
    public async Task A_public_port_in_use_exits_1_with_a_hint_and_no_stack_trace()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var file = Write("good.json", GoodConfig().ToJson());

        var result = await ProxyProcess.RunAsync(["--config", file, "--urls", $"http://127.0.0.1:{port}", "--admin-urls", "http://127.0.0.1:0"]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("error: cannot listen:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"{port}", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    private static ProxyConfig GoodConfig() => ProxyConfig.CatchAll(new Uri("http://127.0.0.1:9/"));

    private static void AssertNoStackTrace(ProcessResult result)
    {
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception:", result.StandardError, StringComparison.Ordinal);
    }

    private string Write(string name, string json)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, json);
        return path;
    }
}
