using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>silent-client</c>: a client that vanished without closing (Wi-Fi gone, NAT entry dropped). After the
/// upgrade it never sends a byte, not even a Pong, while it reads everything the server sends. Reading
/// keeps the TCP window open: what the server can notice is only that its pings go unanswered, which is
/// how a vanished peer looks (its kernel is gone too, but nothing else is different).
/// </summary>
internal sealed class SilentClientCheck : ICheck
{
    public string Name => "silent-client";

    public string Description => "never sends a byte (not even a pong) and reads everything: is a vanished client dropped?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(SocketTuning.Default);
        var bound = context.Settings.MaxReap;
        var ended = await session.WaitForEndAsync(session.Token);
        var close = session.CloseReceived is { } c ? $"; Close {c.Code} at {Durations.Format(c.At)}" : string.Empty;
        var pings = session.PingsText();
        CheckResult Result(Verdict verdict, string summary, string measured) =>
            session.Result(Name, verdict, summary, measured) with { BoundOption = "--max-reap", Bound = bound };

        if (ended)
        {
            var after = session.EndedAfter!.Value;
            var measured = $"dropped after {Durations.Format(after)}{close}; {pings}";
            return after <= bound
                ? Result(Verdict.Pass, $"A client that vanished without a word was dropped after {Durations.Format(after)} " +
                    $"(your bound: {Durations.Format(bound)}): this server does not keep zombies.", measured)
                : Result(Verdict.Fail, $"A client that vanished without a word was only dropped after {Durations.Format(after)}, " +
                    $"later than your bound of {Durations.Format(bound)}: zombies hold memory and connections that long; " +
                    "put a heartbeat (pings with a timeout, e.g. ReaperProxy) in front of the server.", measured);
        }

        var held = session.Elapsed;
        var open = $"still open after {Durations.Format(held)}{close}; {pings}";
        if (held > bound)
        {
            return Result(Verdict.Fail, $"A client that vanished without closing was still held open after {Durations.Format(held)}: " +
                "this server keeps zombies. Put a heartbeat (pings with a timeout, e.g. ReaperProxy) in front of it.", open);
        }

        return session.Interrupted
            ? Result(Verdict.Inconclusive, $"Interrupted after {Durations.Format(held)}, before the server dropped the silent client " +
                $"and before your bound of {Durations.Format(bound)}: run it longer to know.", open)
            : Result(Verdict.Inconclusive, $"The silent client was still held after {Durations.Format(held)}, but that limit is shorter " +
                $"than your bound of {Durations.Format(bound)}: give a --limit longer than --max-reap to know.", open);
    }
}
