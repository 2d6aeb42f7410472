using System.Text.Json;
using ReaperProxy.Probe.Cli;

namespace ReaperProxy.Probe.Tests.Infrastructure;

/// <summary>What one run of the probe printed and returned.</summary>
public sealed record ProbeOutcome(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>The <c>--json</c> report on stdout.</summary>
    public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;

    /// <summary>One check of the JSON report.</summary>
    public JsonElement Check(string name) =>
        Json.GetProperty("checks").EnumerateArray().SingleOrDefault(c => c.GetProperty("name").GetString() == name) is { ValueKind: JsonValueKind.Object } check
            ? check
            : throw new Xunit.Sdk.XunitException($"no check '{name}' in the report:\n{this}");

    public string Verdict(string name) => Check(name).GetProperty("verdict").GetString()!;

    public override string ToString() => $"exit code {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Runs the probe in-process, exactly as its Program does but with captured output (not a terminal).</summary>
public static class ProbeRun
{
    /// <summary>The most any probe run in these tests may take, whatever its limits say.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    public static async Task<ProbeOutcome> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = await ProbeApp.RunAsync(args, new ProbeConsole(stdout, stderr, OutIsTerminal: false, ErrorIsTerminal: false), CancellationToken.None)
            .WaitAsync(Bound);
        return new ProbeOutcome(exitCode, stdout.ToString(), stderr.ToString());
    }
}
