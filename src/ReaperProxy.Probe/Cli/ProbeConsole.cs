namespace ReaperProxy.Probe.Cli;

/// <summary>Where the probe writes, and whether each is a terminal (live progress and colors) or not (plain lines).</summary>
internal sealed record ProbeConsole(TextWriter Out, TextWriter Error, bool OutIsTerminal, bool ErrorIsTerminal)
{
    /// <summary>The process's own stdout and stderr.</summary>
    public static ProbeConsole System => new(Console.Out, Console.Error, !Console.IsOutputRedirected, !Console.IsErrorRedirected);
}
