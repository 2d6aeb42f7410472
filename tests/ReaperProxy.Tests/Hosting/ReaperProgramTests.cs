using ReaperProxy.Hosting;

namespace ReaperProxy.Tests.Hosting;

/// <summary>The entry point's exit codes and output, for the paths that end without starting a server.</summary>
public sealed class ReaperProgramTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-program-tests-");
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Help_prints_the_usage_and_exits_0()
    {
        Assert.Equal(0, await ReaperProgram.RunAsync(["--help"], _out, _err));

        Assert.Contains(CommandLine.Usage, _out.ToString(), StringComparison.Ordinal);
        Assert.Empty(_err.ToString());
    }

    [Fact]
    public async Task An_unknown_argument_exits_2_with_the_error_and_the_usage_on_stderr()
    {
        Assert.Equal(ReaperProgram.UsageError, await ReaperProgram.RunAsync(["--frobnicate"], _out, _err));

        Assert.Equal(2, ReaperProgram.UsageError);
        Assert.StartsWith("error: unknown argument '--frobnicate'", _err.ToString(), StringComparison.Ordinal);
        Assert.Contains(CommandLine.Usage, _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_out.ToString());
    }

    [Fact]
    public async Task A_missing_value_exits_2()
    {
        Assert.Equal(ReaperProgram.UsageError, await ReaperProgram.RunAsync(["--config"], _out, _err));

        Assert.StartsWith("error: option --config needs a value", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_config_on_a_good_file_exits_0_and_describes_each_route()
    {
        var file = Write("good.json", """
            {
              "Reaper": { "Policies": { "fast": { "PingInterval": "2s", "PongTimeout": "1s" } } },
              "ReverseProxy": {
                "Routes": {
                  "a": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "ReaperPolicy": "fast" } },
                  "b": { "ClusterId": "c", "Match": { "Path": "/b" } }
                },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """);

        Assert.Equal(0, await ReaperProgram.RunAsync(["--check-config", file], _out, _err));

        var output = _out.ToString();
        Assert.Contains($"{file}: configuration is valid.", output, StringComparison.Ordinal);
        Assert.Contains("default policy (Reaper:Heartbeat): Mode=Enforce Legs=Both PingInterval=15s PongTimeout=10s CloseTimeout=5s IdleTimeout=off", output, StringComparison.Ordinal);
        Assert.Contains("route a -> cluster c, policy fast: Mode=Enforce Legs=Both PingInterval=2s PongTimeout=1s", output, StringComparison.Ordinal);
        Assert.Contains("route b -> cluster c, policy (default): Mode=Enforce Legs=Both PingInterval=15s", output, StringComparison.Ordinal);
        Assert.Empty(_err.ToString());
    }

    [Fact]
    public async Task Check_config_shows_IdleTimeout_null_in_a_policy_as_off_even_when_Heartbeat_sets_one()
    {
        var file = Write("idle.json", """
            {
              "Reaper": { "Heartbeat": { "IdleTimeout": "30s" }, "Policies": { "forever": { "IdleTimeout": null } } },
              "ReverseProxy": {
                "Routes": {
                  "a": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "ReaperPolicy": "forever" } },
                  "b": { "ClusterId": "c", "Match": { "Path": "/b" } }
                },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """);

        Assert.Equal(0, await ReaperProgram.RunAsync(["--check-config", file], _out, _err));

        var lines = _out.ToString().Split('\n');
        Assert.Contains(lines, l => l.StartsWith("route a -> cluster c, policy forever:", StringComparison.Ordinal) && l.Contains("IdleTimeout=off", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("route b -> cluster c, policy (default):", StringComparison.Ordinal) && l.Contains("IdleTimeout=30s", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Check_config_on_a_file_without_routes_says_so()
    {
        var file = Write("empty.json", "{}");

        Assert.Equal(0, await ReaperProgram.RunAsync(["--check-config", file], _out, _err));

        Assert.Contains("no routes are configured", _out.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_config_on_a_bad_file_exits_1_and_names_the_file_and_every_problem()
    {
        var file = Write("bad.json", """{ "Reaper": { "Heartbeat": { "Mode": "Sometimes", "PingInterval": "0s" } } }""");

        Assert.Equal(ReaperProgram.ConfigError, await ReaperProgram.RunAsync(["--check-config", file], _out, _err));

        var error = _err.ToString();
        Assert.Contains($"error: {file}: Reaper:Heartbeat:Mode: 'Sometimes' is not one of Off, Observe, Enforce", error, StringComparison.Ordinal);
        Assert.Contains($"error: {file}: Reaper:Heartbeat:PingInterval: '0s' must be a positive duration", error, StringComparison.Ordinal);
        Assert.Contains($"{file}: 2 problem(s)", error, StringComparison.Ordinal);
        Assert.Empty(_out.ToString());
    }

    [Fact]
    public async Task Check_config_on_a_missing_file_exits_1()
    {
        var file = Path.Combine(_dir.FullName, "missing.json");

        Assert.Equal(ReaperProgram.ConfigError, await ReaperProgram.RunAsync(["--check-config", file], _out, _err));

        Assert.Contains($"error: {file}: file not found", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Starting_with_a_bad_file_exits_1_before_listening()
    {
        var file = Write("bad.json", """{ "Reaper": { "Heartbeat": { "CloseTimeout": "-00:00:01" } } }""");

        var code = await ReaperProgram.RunAsync(["--config", file, "--urls", "http://127.0.0.1:0", "--admin-urls", "http://127.0.0.1:0"], _out, _err);

        Assert.Equal(ReaperProgram.ConfigError, code);
        Assert.Contains($"error: {file}: Reaper:Heartbeat:CloseTimeout: '-00:00:01' must be a positive duration", _err.ToString(), StringComparison.Ordinal);
        Assert.Contains("ReaperProxy did not start: 1 configuration problem(s).", _err.ToString(), StringComparison.Ordinal);
    }

    private string Write(string name, string json)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, json);
        return path;
    }
}
