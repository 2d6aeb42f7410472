using ReaperProxy.Probe.Checks;

namespace ReaperProxy.Probe.Output;

/// <summary>The probe's exit codes: a contract for scripts and CI (README, docs/probe.md).</summary>
internal static class ExitCodes
{
    /// <summary>Every check passed.</summary>
    public const int AllPassed = 0;

    /// <summary>At least one check failed (and every check could connect).</summary>
    public const int AnyFailed = 1;

    /// <summary>A usage error, or a connection error (DNS, refused, TLS, an HTTP status instead of 101, ...).</summary>
    public const int ConnectionError = 2;

    /// <summary>No check failed, but at least one was inconclusive (nothing proven either way).</summary>
    public const int Inconclusive = 3;

    /// <summary>Ctrl-C or SIGTERM stopped the run (128 + SIGINT); what was learned is still reported.</summary>
    public const int Interrupted = 130;

    /// <summary>The exit code of a finished run: interrupted, then a connection error, then a failure, then inconclusive.</summary>
    public static int For(RunReport report) =>
        report.Interrupted ? Interrupted
        : report.Count(Verdict.Error) > 0 ? ConnectionError
        : report.Count(Verdict.Fail) > 0 ? AnyFailed
        : report.Count(Verdict.Inconclusive) > 0 ? Inconclusive
        : AllPassed;
}
