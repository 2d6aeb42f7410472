using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>ping-answer</c>: sends <c>--pings</c> pings, one at a time, each with its own payload, and matches
/// the pongs to them by payload (RFC 6455 §5.5.3: a Pong carries the Ping's payload). Passes when every
/// ping got its pong and the p99 round trip is within <c>--max-rtt</c>. A ping is given up on after ten
/// times <c>--max-rtt</c> (at least 5 s), within the limit.
/// </summary>
internal sealed class PingAnswerCheck : ICheck
{
    public string Name => "ping-answer";

    public string Description => "sends pings with distinct payloads: do matching pongs come back, how fast (p50/p99)?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(SocketTuning.Default);
        var settings = context.Settings;
        session.AnswerPings = true;
        session.AnswerClose = true;
        var outstanding = new ConcurrentDictionary<string, TaskCompletionSource<TimeSpan>>();
        var unmatched = 0;
        session.OnPong = (frame, at) =>
        {
            if (outstanding.TryRemove(Convert.ToHexString(frame.Payload), out var waiting))
            {
                waiting.TrySetResult(at);
            }
            else
            {
                Interlocked.Increment(ref unmatched);
            }
        };
        var reader = session.WaitForEndAsync(session.Token);
        var giveUpAfter = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(5).Ticks, settings.MaxRtt.Ticks * 10));
        var tag = Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        var rtts = new List<TimeSpan>();
        var sent = 0;
        var missed = 0;
        try
        {
            for (var i = 1; i <= settings.Pings && !reader.IsCompleted; i++)
            {
                var payload = Encoding.ASCII.GetBytes($"reaperproxy-probe {tag} ping {i}");
                var answer = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
                outstanding[Convert.ToHexString(payload)] = answer;
                var sentAt = session.Elapsed;
                if (!await session.TrySendAsync(Opcode.Ping, payload, session.Token))
                {
                    break;
                }

                sent++;
                var first = await Task.WhenAny(answer.Task, reader, Task.Delay(giveUpAfter, context.Time, session.Token));
                if (first == answer.Task)
                {
                    var rtt = answer.Task.Result - sentAt;
                    rtts.Add(rtt);
                    context.Progress.Status = $"{rtts.Count} of {settings.Pings} pongs";
                    context.Progress.Note($"pong {i} matched, {Durations.FormatMs(rtt.TotalMilliseconds)}");
                }
                else if (first == reader || session.Token.IsCancellationRequested)
                {
                    // The connection ended, or the limit or Ctrl-C came: not a pong that went missing.
                    break;
                }
                else
                {
                    missed++;
                    context.Progress.Note($"ping {i}: no matching pong within {Durations.Format(giveUpAfter)}");
                }
            }
        }
        catch (OperationCanceledException) when (session.Token.IsCancellationRequested)
        {
            // The limit, or Ctrl-C: what was measured stands.
        }

        var connectionEnded = reader.IsCompleted && await reader;
        if (!connectionEnded)
        {
            await session.CloseNormallyAsync(reader);
        }

        var sorted = rtts.Order().ToList();
        var p50 = Percentile(sorted, 0.50);
        var p99 = Percentile(sorted, 0.99);
        var rttText = sorted.Count == 0 ? "no round trip measured" :
            $"p50 {Durations.FormatMs(p50!.Value.TotalMilliseconds)}, p99 {Durations.FormatMs(p99!.Value.TotalMilliseconds)}";
        IReadOnlyList<KeyValuePair<string, object?>> details =
        [
            new("sent", sent),
            new("answered", rtts.Count),
            new("unmatchedPongs", unmatched),
            new("rttP50Ms", p50?.TotalMilliseconds),
            new("rttP99Ms", p99?.TotalMilliseconds),
            new("rttMinMs", sorted.Count > 0 ? sorted[0].TotalMilliseconds : null),
            new("rttMaxMs", sorted.Count > 0 ? sorted[^1].TotalMilliseconds : null),
        ];
        var measured = $"{rtts.Count} of {sent} pongs matched ({rttText})" + (unmatched > 0 ? $", {unmatched} unmatched pong(s)" : string.Empty);
        CheckResult Result(Verdict verdict, string summary) =>
            session.Result(Name, verdict, summary, measured, ConnectionEnd.Probe) with { BoundOption = "--max-rtt", Bound = settings.MaxRtt, Details = details };

        var bound = Durations.Format(settings.MaxRtt);
        if (missed > 0)
        {
            return Result(Verdict.Fail, $"{missed} of {sent} pings got no matching pong within {Durations.Format(giveUpAfter)}: the server (or something in front of it) " +
                "does not answer pings, so a client cannot tell whether it is still there.");
        }

        if (connectionEnded && rtts.Count < settings.Pings)
        {
            return Result(Verdict.Fail, $"The server ended the connection after {rtts.Count} of {settings.Pings} pings: pinging it is not safe.");
        }

        if (rtts.Count < settings.Pings)
        {
            return Result(Verdict.Inconclusive, session.Interrupted
                ? $"Interrupted after {rtts.Count} of {settings.Pings} pings, all answered so far ({rttText})."
                : $"The limit came after {rtts.Count} of {settings.Pings} pings, all answered so far ({rttText}): give a longer --limit.");
        }

        if (p99 > settings.MaxRtt)
        {
            return Result(Verdict.Fail, $"The server answered all {sent} pings, but slowly ({rttText}, over your bound of {bound}): " +
                "clients with a pong timeout near that will drop healthy connections.");
        }

        return Result(Verdict.Pass, $"The server answered all {sent} pings with matching pongs ({rttText}; your bound: {bound}): " +
            "clients and proxies can check it is alive.");
    }

    /// <summary>Nearest-rank percentile of a sorted list.</summary>
    internal static TimeSpan? Percentile(IReadOnlyList<TimeSpan> sorted, double p) =>
        sorted.Count == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
