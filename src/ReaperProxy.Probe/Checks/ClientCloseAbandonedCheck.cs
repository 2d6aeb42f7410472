using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>client-close-abandoned</c>: a client that starts the closing handshake and is gone right after: it
/// sends Close, then neither reads nor answers. Its receive buffer is small (SO_RCVBUF 4 KiB, set before
/// connecting) so that not reading means the server cannot push much before its writes stall. It watches
/// the TCP state without reading (Linux: TCP_INFO) for when the server ends TCP, as RFC 6455 §7.1.1 asks
/// the server to do first.
/// </summary>
internal sealed class ClientCloseAbandonedCheck : ICheck
{
    private const int ReceiveBuffer = 4096;
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(20);

    public string Name => "client-close-abandoned";

    public string Description => "sends Close, then neither reads nor answers: does the server end TCP?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        await using var session = await context.OpenAsync(new SocketTuning { ReceiveBufferSize = ReceiveBuffer });
        var bound = context.Settings.MaxCloseWait;
        var socket = session.Connection.Socket;
        var effectiveBuffer = socket.ReceiveBufferSize;
        await session.SendCloseAsync(1000, "reaperproxy-probe: client-close-abandoned", session.Token);
        context.Progress.Status = "Close sent, not reading";
        context.Progress.Note("sent Close 1000; from now on reads nothing and answers nothing");
        var closeAt = session.CloseSent!.At;

        var drained = 0L;
        try
        {
            while (true)
            {
                var state = TcpState.Peek(socket);
                if (state != StreamEnd.None)
                {
                    session.MarkEnded(state);
                    break;
                }

                if (!TcpState.WatchesKernelState && socket.Available > 0)
                {
                    // Off Linux the end can only be seen behind the bytes already received: take them (at most the small buffer).
                    var scratch = new byte[Math.Min(socket.Available, ReceiveBuffer)];
                    drained += socket.Receive(scratch);
                }

                await Task.Delay(s_poll, context.Time, session.Token);
            }
        }
        catch (OperationCanceledException) when (session.Token.IsCancellationRequested)
        {
            // The limit, or Ctrl-C.
        }

        IReadOnlyList<KeyValuePair<string, object?>> Details(TimeSpan? wait) =>
        [
            new("receiveBufferBytes", effectiveBuffer),
            new("watchedBy", TcpState.WatchesKernelState ? "tcp_info" : "poll"),
            new("bytesTakenToSeeTheEnd", drained),
            new("closeWaitSeconds", wait?.TotalSeconds),
        ];
        CheckResult Result(Verdict verdict, string summary, string measured, TimeSpan? wait) =>
            session.Result(Name, verdict, summary, measured) with { BoundOption = "--max-close-wait", Bound = bound, Details = Details(wait) };

        if (session.EndedAfter is { } ended)
        {
            var wait = ended - closeAt;
            var measured = $"TCP ended {Durations.Format(wait)} after the probe's Close ({(session.End == StreamEnd.Fin ? "FIN" : "RST")})";
            return wait <= bound
                ? Result(Verdict.Pass, $"After a client sent Close and then stopped reading, the server ended the connection {Durations.Format(wait)} later " +
                    $"(your bound: {Durations.Format(bound)}): clients that leave while closing are not kept.", measured, wait)
                : Result(Verdict.Fail, $"After a client sent Close and then stopped reading, the server took {Durations.Format(wait)} to end the connection, " +
                    $"longer than your bound of {Durations.Format(bound)}: such clients hold a connection that long.", measured, wait);
        }

        var waited = session.Elapsed - closeAt;
        var open = $"still open {Durations.Format(waited)} after the probe's Close";
        if (waited > bound)
        {
            return Result(Verdict.Fail, $"After a client sent Close and then stopped reading, the server still held the connection {Durations.Format(waited)} later: " +
                "clients that vanish while closing leak connections. Bound the closing handshake (ReaperProxy's CloseTimeout does).", open, null);
        }

        return Result(Verdict.Inconclusive, session.Interrupted
            ? $"Interrupted {Durations.Format(waited)} after the probe's Close, before the server ended the connection and before your bound of {Durations.Format(bound)}."
            : $"Still open {Durations.Format(waited)} after the probe's Close when the limit came, which is within your bound of {Durations.Format(bound)}: " +
              "give a --limit longer than --max-close-wait.", open, null);
    }
}
