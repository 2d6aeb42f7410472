using System.Text;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>no-close-reply</c>: a client that vanishes in the middle of the closing handshake. It behaves until
/// the server sends its Close (waiting for it, or provoking it with <c>--close-trigger MESSAGE</c>), then
/// answers nothing ever again, not even pings, while it reads everything; it measures how long the
/// server waits for the reply RFC 6455 §5.5.1 says must come before it ends TCP.
/// </summary>
internal sealed class NoCloseReplyCheck : ICheck
{
    public string Name => "no-close-reply";

    public string Description => "never answers the server's Close (--close-trigger provokes one): how long does the server wait?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(SocketTuning.Default);
        var bound = context.Settings.MaxCloseWait;
        var trigger = context.Settings.CloseTrigger;
        session.AnswerPings = true;
        session.SilentAfterClose = true;
        IReadOnlyList<KeyValuePair<string, object?>> Details(TimeSpan? wait) =>
        [
            new("trigger", trigger),
            new("closeWaitSeconds", wait?.TotalSeconds),
        ];
        CheckResult Result(Verdict verdict, string summary, string measured, TimeSpan? wait) =>
            session.Result(Name, verdict, summary, measured) with { BoundOption = "--max-close-wait", Bound = bound, Details = Details(wait) };

        if (trigger is not null)
        {
            await session.TrySendAsync(Opcode.Text, Encoding.UTF8.GetBytes(trigger), session.Token);
            context.Progress.Note($"sent the close trigger '{trigger}'");
        }

        var ended = await session.WaitForEndAsync(session.Token);
        var pings = session.PingsText();
        if (session.CloseReceived is not { } close)
        {
            var how = trigger is null ? "without a trigger" : $"after the trigger '{trigger}'";
            if (ended)
            {
                return Result(Verdict.Inconclusive,
                    $"The server ended the connection {how} after {Durations.Format(session.EndedAfter!.Value)} without sending a Close, " +
                    "so there was no closing handshake to leave unanswered.",
                    $"ended after {Durations.Format(session.EndedAfter!.Value)} with no Close; {pings}", null);
            }

            return Result(Verdict.Inconclusive,
                session.Interrupted
                    ? $"Interrupted after {Durations.Format(session.Elapsed)}, before the server sent a Close."
                    : $"The server sent no Close within {Durations.Format(session.Elapsed)} {how}, so nothing could be measured: " +
                      "give --close-trigger MESSAGE with a message that makes your server close.",
                $"no Close within {Durations.Format(session.Elapsed)}; {pings}", null);
        }

        var closeText = $"Close {close.Code} at {Durations.Format(close.At)}";
        if (ended)
        {
            var wait = session.EndedAfter!.Value - close.At;
            var measured = $"{closeText}, unanswered; TCP ended {Durations.Format(wait)} later";
            return wait <= bound
                ? Result(Verdict.Pass, $"When a client never answers the server's Close, the server ended the connection {Durations.Format(wait)} later " +
                    $"(your bound: {Durations.Format(bound)}): a hanging close does not hold the connection.", measured, wait)
                : Result(Verdict.Fail, $"When a client never answers the server's Close, the server waited {Durations.Format(wait)} before ending the connection, " +
                    $"longer than your bound of {Durations.Format(bound)}: each client that vanishes while closing holds a connection that long.", measured, wait);
        }

        var waited = session.Elapsed - close.At;
        var open = $"{closeText}, unanswered; still open {Durations.Format(waited)} later";
        if (waited > bound)
        {
            return Result(Verdict.Fail, $"When a client never answers the server's Close, the server still held the connection {Durations.Format(waited)} later: " +
                "every client that vanishes while closing leaks a connection. Bound the closing handshake (ReaperProxy's CloseTimeout does).", open, null);
        }

        return Result(Verdict.Inconclusive, session.Interrupted
            ? $"Interrupted {Durations.Format(waited)} after the server's unanswered Close, before it gave up and before your bound of {Durations.Format(bound)}."
            : $"The connection was still open {Durations.Format(waited)} after the server's unanswered Close, when the limit came; that is within your bound of " +
              $"{Durations.Format(bound)}, so give a --limit long enough to wait it out.", open, null);
    }
}
