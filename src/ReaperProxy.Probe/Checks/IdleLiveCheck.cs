using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>idle-live</c>: a user who is there but quiet. It answers every ping (a masked Pong with the same
/// payload) and the server's Close, and sends nothing else. Whatever ends it before the limit cuts live
/// idle users: typically an idle timer of a load balancer or proxy on the path (60 s and 100 s are common).
/// </summary>
internal sealed class IdleLiveCheck : ICheck
{
    /// <summary>After a Close from the server, how long the probe waits for TCP to end as well.</summary>
    private static readonly TimeSpan s_afterClose = TimeSpan.FromSeconds(2);

    public string Name => "idle-live";

    public string Description => "answers every ping, sends nothing else: does something on the path cut live idle users?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(SocketTuning.Default);
        session.AnswerPings = true;
        session.AnswerClose = true;
        var ended = await session.WaitForEndAsync(session.UntilAfterClose(s_afterClose));
        var pings = session.PingsText();
        var answered = session.PongsSent;

        if (ended || session.CloseReceived is not null)
        {
            var close = session.CloseReceived;
            var cutAt = close?.At ?? session.EndedAfter!.Value;
            var how = close is null
                ? "the connection simply ended, with no Close frame: the mark of a proxy or load balancer idle timer"
                : $"with Close {close.Code}{(close.Reason.Length > 0 ? $" '{close.Reason}'" : string.Empty)}";
            return session.Result(Name, Verdict.Fail,
                $"A live client that answered every ping but sent nothing was cut after {Durations.Format(cutAt)} ({how}): " +
                $"idle users get disconnected; raise that idle timeout, or have clients or a proxy send something more often than every {Durations.Format(cutAt)}.",
                $"cut after {Durations.Format(cutAt)}{(close is null ? " (no Close)" : $" (Close {close.Code})")}; {pings}, {answered} answered");
        }

        var held = session.Elapsed;
        await session.CloseNormallyAsync();
        var measured = $"open for {Durations.Format(held)}; {pings}, {answered} answered";
        return session.Interrupted
            ? session.Result(Name, Verdict.Inconclusive,
                $"Interrupted after {Durations.Format(held)} without a cut: idle timers longer than that are not ruled out; run it to the limit ({Durations.Format(session.Limit)}).",
                measured)
            : session.Result(Name, Verdict.Pass,
                $"A live client that answered every ping but sent nothing stayed connected for the whole {Durations.Format(held)}: " +
                "nothing on the path cuts idle users within that time.", measured, ConnectionEnd.StillOpen);
    }
}
