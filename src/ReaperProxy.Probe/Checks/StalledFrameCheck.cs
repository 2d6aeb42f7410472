using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>stalled-frame</c>: a client that stops halfway through a message (an upload whose sender froze). It
/// sends a binary frame's header promising 1024 bytes and only 16 of them, then sends nothing more while it
/// reads everything. It cannot answer a ping even if it wanted to: a control frame may go between frames,
/// never inside one (RFC 6455 §5.4), and the server is waiting for the rest of this one.
/// </summary>
internal sealed class StalledFrameCheck : ICheck
{
    private const int Promised = 1024;
    private const int Sent = 16;

    public string Name => "stalled-frame";

    public string Description => "sends half a frame, then nothing: does the server give up on it?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(SocketTuning.Default);
        var bound = context.Settings.MaxStall;
        await session.Connection.Writer.SendRawAsync(FrameWriter.EncodeTruncated(Opcode.Binary, Promised, Sent), session.Token);
        context.Progress.Note($"sent a frame header promising {Promised} bytes and {Sent} of them; now stalls");
        var ended = await session.WaitForEndAsync(session.Token);
        var close = session.CloseReceived is { } c ? $"; Close {c.Code} at {Durations.Format(c.At)}" : string.Empty;
        var pings = session.PingsText();
        IReadOnlyList<KeyValuePair<string, object?>> details = [new("promisedBytes", Promised), new("sentBytes", Sent)];
        CheckResult Result(Verdict verdict, string summary, string measured) =>
            session.Result(Name, verdict, summary, measured) with { BoundOption = "--max-stall", Bound = bound, Details = details };

        if (ended)
        {
            var after = session.EndedAfter!.Value;
            var measured = $"given up after {Durations.Format(after)}{close}; {pings}";
            return after <= bound
                ? Result(Verdict.Pass, $"A client that stopped in the middle of a message was dropped after {Durations.Format(after)} " +
                    $"(your bound: {Durations.Format(bound)}): a frozen upload does not hold the connection.", measured)
                : Result(Verdict.Fail, $"A client that stopped in the middle of a message was only dropped after {Durations.Format(after)}, " +
                    $"longer than your bound of {Durations.Format(bound)}.", measured);
        }

        var held = session.Elapsed;
        var open = $"still waiting after {Durations.Format(held)}{close}; {pings}";
        if (held > bound)
        {
            return Result(Verdict.Fail, $"A client that stopped halfway through a message was still held after {Durations.Format(held)}: " +
                "a frozen upload holds its connection forever; a heartbeat (e.g. ReaperProxy) or a frame timeout in front of the server ends it.", open);
        }

        return Result(Verdict.Inconclusive, session.Interrupted
            ? $"Interrupted after {Durations.Format(held)}, before the server gave up on the half frame and before your bound of {Durations.Format(bound)}."
            : $"Still waiting for the rest of the frame after {Durations.Format(held)}, within your bound of {Durations.Format(bound)}: " +
              "give a --limit longer than --max-stall.", open);
    }
}
