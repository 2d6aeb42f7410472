using System.Diagnostics;
using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Cli;

/// <summary>The built program as a user runs it: Ctrl-C, and the .NET tool package.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task Ctrl_C_stops_the_checks_at_once_prints_what_was_learned_and_exits_130()
    {
        await using var server = await TargetServer.StartAsync();
        await using var probe = ChildProcess.Start(ChildProcess.Dotnet, ChildProcess.ProbeDll, server.WebSocketUri.ToString(),
            "--check", "silent-client", "--check", "idle-live", "--check", "ping-answer", "--limit", "60s");
        await probe.WaitForOutputAsync("[silent-client +0.00s] connected", TimeSpan.FromSeconds(30));
        await probe.WaitForOutputAsync("[ping-answer", TimeSpan.FromSeconds(10));
        await probe.WaitForOutputAsync("PASS: 10 of 10 pongs matched", TimeSpan.FromSeconds(10));

        var clock = Stopwatch.StartNew();
        probe.Interrupt();
        await probe.WaitForExitAsync(TimeSpan.FromSeconds(15));

        Assert.True(probe.ExitCode == 130, $"exit code {probe.ExitCode}\n{probe}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed} to stop");
        Assert.Contains("interrupted: stopping the checks", probe.Stderr);
        var rows = probe.Stdout.Split('\n').Where(l => l.StartsWith('│')).ToList();
        Assert.Contains(rows, r => r.Contains("silent-client") && r.Contains("inconclusive"));
        Assert.Contains(rows, r => r.Contains("idle-live") && r.Contains("inconclusive"));
        Assert.Contains(rows, r => r.Contains("ping-answer") && r.Contains("pass"));
        Assert.Contains("Interrupted after", probe.Stdout);
        Assert.Contains("(interrupted); exit code 130 (interrupted)", probe.Stdout);
    }

    [Fact]
    public async Task It_packs_as_a_dotnet_tool_that_installs_and_runs_as_reaperproxy_probe()
    {
        var root = RepositoryRoot();
        var work = Directory.CreateTempSubdirectory("reaperproxy-probe-tool-");
        try
        {
            var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
            var packages = Path.Combine(work.FullName, "packages");
            var pack = await ChildProcess.RunAsync(TimeSpan.FromMinutes(3), ChildProcess.Dotnet,
                "pack", Path.Combine(root, "src", "ReaperProxy.Probe"), "-c", configuration, "--no-build", "-o", packages, "-nologo");
            Assert.True(pack.ExitCode == 0, pack.ToString());
            Assert.Single(Directory.GetFiles(packages, "reaperproxy-probe.*.nupkg"));

            // Only the local package source: a tool package carries its dependencies, nothing is fetched.
            var nugetConfig = Path.Combine(work.FullName, "nuget.config");
            File.WriteAllText(nugetConfig, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration><packageSources><clear /><add key="local" value="{packages}" /></packageSources></configuration>
                """);
            var tools = Path.Combine(work.FullName, "tools");
            var install = await ChildProcess.RunAsync(TimeSpan.FromMinutes(3), ChildProcess.Dotnet,
                "tool", "install", "reaperproxy-probe", "--tool-path", tools, "--configfile", nugetConfig);
            Assert.True(install.ExitCode == 0, install.ToString());

            var help = await ChildProcess.RunAsync(TimeSpan.FromMinutes(1), Path.Combine(tools, "reaperproxy-probe"), "--help");
            Assert.True(help.ExitCode == 0, help.ToString());
            Assert.Contains("reaperproxy-probe <URL> [options]", help.Stdout);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ReaperProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("ReaperProxy.sln not found above " + AppContext.BaseDirectory);
    }
}
