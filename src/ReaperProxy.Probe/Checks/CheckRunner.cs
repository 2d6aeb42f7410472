using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// Runs the selected checks, all at once (each has its own connection and nothing in common with the
/// others), each bounded by its limit. A check that overruns its limit by more than the connect timeout
/// and a margin is abandoned and reported as an error: nothing runs past its bound.
/// </summary>
internal sealed class CheckRunner(ProbeSettings settings, TimeProvider time)
{
    /// <summary>Slack past a check's own bound before it is abandoned (its ending handshakes: Close, TCP).</summary>
    private static readonly TimeSpan s_margin = TimeSpan.FromSeconds(5);

    /// <summary>A progress line per selected check, in catalog order, before they start.</summary>
    public IReadOnlyList<CheckProgress> Prepare() =>
        [.. settings.Checks.Select(name => new CheckProgress(name, settings.LimitFor(name), time))];

    /// <summary>The longest a run can take: the slowest check's connect timeout, limit and margin.</summary>
    public TimeSpan Bound => settings.Checks.Select(settings.LimitFor).DefaultIfEmpty(TimeSpan.Zero).Max() + settings.Connect.Timeout + s_margin;

    /// <summary>Runs every check of <paramref name="progress"/>; returns when all have a result.</summary>
    public async Task<IReadOnlyList<CheckResult>> RunAsync(IReadOnlyList<CheckProgress> progress, CancellationToken interrupt)
    {
        var runs = progress.Select(p => RunOneAsync(p, interrupt)).ToList();
        return await Task.WhenAll(runs);
    }

    private async Task<CheckResult> RunOneAsync(CheckProgress progress, CancellationToken interrupt)
    {
        var check = CheckCatalog.Find(progress.Check) ?? throw new InvalidOperationException("unknown check " + progress.Check);
        var context = new CheckContext(settings, progress, time, interrupt);
        CheckResult result;
        try
        {
            // Off the caller's thread at once: checks start together.
            var run = Task.Run(() => check.RunAsync(context), CancellationToken.None);
            result = await run.WaitAsync(progress.Limit + settings.Connect.Timeout + s_margin, time);
        }
        catch (ConnectFailureException ex)
        {
            result = interrupt.IsCancellationRequested
                ? CheckResult.Failed(progress.Check, progress.Limit, "interrupted before it was connected") with { Verdict = Verdict.Inconclusive, Interrupted = true }
                : CheckResult.Failed(progress.Check, progress.Limit, ex.Message);
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            result = CheckResult.Failed(progress.Check, progress.Limit, "interrupted before it was connected") with
            {
                Verdict = Verdict.Inconclusive,
                Summary = "Interrupted before its connection was open: nothing was measured.",
                Interrupted = true,
            };
        }
        catch (TimeoutException)
        {
            result = CheckResult.Failed(progress.Check, progress.Limit,
                $"it did not finish within its bound ({Durations.Format(progress.Limit + settings.Connect.Timeout + s_margin)}) and was abandoned (a probe bug: please report it)");
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            result = CheckResult.Failed(progress.Check, progress.Limit, "its connection failed: " + ex.Message);
        }

        progress.Finish(result);
        progress.Note($"{result.Verdict.ToString().ToUpperInvariant()}: {result.Measured}");
        return result;
    }
}
