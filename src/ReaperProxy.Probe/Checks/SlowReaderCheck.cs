using System.Text;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// <c>slow-reader</c>: a user on a poor link, slow but alive. It asks for data (<c>--echo MESSAGE</c>,
/// sent again and again until <c>--read-bytes</c> will have come back; without it, it reads the server's
/// own stream) and reads it at <c>--read-rate</c> through a small receive buffer (SO_RCVBUF 4 KiB), so
/// its TCP window opens only as fast as it reads. It answers pings and a Close as a correct client.
/// Passes when it read <c>--read-bytes</c> (or reached the limit) without being cut.
/// </summary>
internal sealed class SlowReaderCheck : ICheck
{
    private const int ReceiveBuffer = 4096;
    private const int MaxBatch = 16 * 1024;
    private static readonly TimeSpan s_noDataWithin = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_afterClose = TimeSpan.FromSeconds(2);

    public string Name => "slow-reader";

    public string Description => "reads slowly (--read-rate) what it asks for (--echo) or what the server streams: is a slow but live user cut?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        var settings = context.Settings;
        var tuning = new SocketTuning
        {
            ReceiveBufferSize = ReceiveBuffer,
            ReadBufferSize = 1024,
            ReadThrough = stream => new PacedStream(stream, settings.ReadRate, context.Time),
        };
        await using var session = await context.OpenAsync(tuning);
        session.AnswerPings = true;
        session.AnswerClose = true;
        var effectiveBuffer = session.Connection.Socket.ReceiveBufferSize;
        var stop = session.UntilAfterClose(s_afterClose);
        using var done = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var readAll = false;
        session.OnData = total =>
        {
            context.Progress.Status = $"read {Durations.FormatBytes(total)} of {Durations.FormatBytes(settings.ReadBytes)}";
            if (total >= settings.ReadBytes && !readAll)
            {
                readAll = true;
                done.Cancel();
            }
        };

        var noData = false;
        var watchdog = Task.Run(async () =>
        {
            var within = s_noDataWithin < session.Limit ? s_noDataWithin : session.Limit;
            await Task.Delay(within, context.Time, done.Token);
            if (session.DataBytes == 0)
            {
                noData = true;
                done.Cancel();
            }
        });
        var sender = settings.Echo is { } echo ? SendEchoesAsync(session, echo, settings.ReadBytes, done.Token) : Task.CompletedTask;
        var ended = await session.WaitForEndAsync(done.Token);
        await Task.WhenAll(Quiet(watchdog), Quiet(sender));

        var source = settings.Echo is null ? "server_stream" : "echo";
        IReadOnlyList<KeyValuePair<string, object?>> details =
        [
            new("source", source),
            new("readRateBytesPerSecond", settings.ReadRate),
            new("receiveBufferBytes", effectiveBuffer),
            new("requestedBytes", settings.ReadBytes),
            new("firstDataAfterSeconds", session.FirstDataAt?.TotalSeconds),
        ];
        var rate = Durations.FormatRate(settings.ReadRate);
        var read = Durations.FormatBytes(session.DataBytes);
        CheckResult Result(Verdict verdict, string summary, string measured, ConnectionEnd? endedBy = null) =>
            session.Result(Name, verdict, summary, measured, endedBy) with { Details = details };

        if (ended || session.CloseReceived is not null)
        {
            var close = session.CloseReceived;
            var cutAt = close?.At ?? session.EndedAfter!.Value;
            var how = close is null ? "no Close" : $"Close {close.Code}{(close.Reason.Length > 0 ? $" '{close.Reason}'" : string.Empty)}";
            if (session.DataBytes == 0)
            {
                return Result(Verdict.Inconclusive,
                    $"The connection ended after {Durations.Format(cutAt)} ({how}) before any data came to read slowly.",
                    $"ended after {Durations.Format(cutAt)}, nothing read");
            }

            return Result(Verdict.Fail,
                $"A client reading slowly ({rate}) but steadily was cut after {Durations.Format(cutAt)} ({how}), having read {read}: " +
                "users on slow links get disconnected; whatever cut it judges slowness as death and needs a longer timeout.",
                $"cut after {Durations.Format(cutAt)} ({how}) at {read} read, {rate}; {session.PingsText()}");
        }

        var held = session.Elapsed;
        await session.CloseNormallyAsync();
        var measured = $"read {read} at {rate} in {Durations.Format(held)}; {session.PingsText()}";
        if (noData)
        {
            return Result(Verdict.Inconclusive,
                $"The server sent nothing to read within {Durations.Format(held)}" +
                (settings.Echo is null ? "; give --echo MESSAGE (for an echo server) so that there is data to read slowly." : $", not even the echo of '{settings.Echo}'."),
                measured, ConnectionEnd.Probe);
        }

        if (readAll)
        {
            return Result(Verdict.Pass,
                $"A client reading slowly ({rate}) but steadily read all {read} in {Durations.Format(held)} without being cut: " +
                "slow users are not mistaken for dead ones.", measured, ConnectionEnd.Probe);
        }

        return session.Interrupted
            ? Result(Verdict.Inconclusive, $"Interrupted after {Durations.Format(held)} ({read} read slowly, not cut so far).", measured)
            : Result(Verdict.Pass,
                $"A client reading slowly ({rate}) was still connected at the limit, {Durations.Format(held)}, having read {read}: slow users are not cut.",
                measured, ConnectionEnd.StillOpen);
    }

    // Sends the echo message until the echoes add up to what the check reads, many frames per write.
    private static async Task SendEchoesAsync(ProbeSession session, string echo, int wanted, CancellationToken token)
    {
        var payload = Encoding.UTF8.GetBytes(echo);
        var frames = (wanted + payload.Length - 1) / Math.Max(1, payload.Length);
        var batch = new MemoryStream();
        for (var i = 0; i < frames && !token.IsCancellationRequested; i++)
        {
            batch.Write(FrameWriter.Encode(Opcode.Text, payload));
            if (batch.Length >= MaxBatch || i == frames - 1)
            {
                await session.Connection.Writer.SendRawAsync(batch.ToArray(), token);
                batch.SetLength(0);
            }
        }
    }

    private static async Task Quiet(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // Stopped with the check, or the connection went away (the reads say how).
        }
    }
}
