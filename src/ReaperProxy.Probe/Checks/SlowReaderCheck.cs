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
    private const int MaxBatch = 4 * 1024;
    private const int MaxAhead = 16 * 1024;
    private const int MaxDrain = 4 * 1024 * 1024;
    private static readonly TimeSpan s_noDataWithin = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_afterClose = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_drain = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_aheadPoll = TimeSpan.FromMilliseconds(20);

    public string Name => "slow-reader";

    public string Description => "reads slowly (--read-rate) what it asks for (--echo) or what the server streams: is a slow but live user cut?";

    public async Task<CheckResult> RunAsync(CheckContext context)
    {
        var settings = context.Settings;
        PacedStream? paced = null;
        var tuning = new SocketTuning
        {
            ReceiveBufferSize = ReceiveBuffer,
            ReadBufferSize = 1024,
            ReadThrough = stream => paced = new PacedStream(stream, settings.ReadRate, context.Time),
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
        var sender = settings.Echo is { } echo ? SendEchoesAsync(session, echo, settings.ReadBytes, context.Time, done.Token) : Task.CompletedTask;
        var ended = await session.WaitForEndAsync(done.Token);
        await Task.WhenAll(Quiet(watchdog), Quiet(sender));

        // A server (or proxy) that gave up on the slow reader may have closed its socket gracefully: its FIN then
        // waits behind the data still queued toward the probe and would reach a slow reader only much later.
        // Read the rest at full speed, briefly, to see whether an end is waiting there.
        var slowPhase = session.Elapsed;
        var drainedFrom = session.DataBytes;
        var endBehindData = false;
        // (Not after every echo came back: nothing more was asked for, so nothing can be queued.)
        if (!ended && session.CloseReceived is null && !session.Interrupted && paced is not null && !(readAll && settings.Echo is not null))
        {
            paced.Unpace();
            using var drain = CancellationTokenSource.CreateLinkedTokenSource(context.Interrupt);
            drain.CancelAfter(s_drain);
            session.OnData = total =>
            {
                if (total - drainedFrom >= MaxDrain)
                {
                    drain.Cancel();
                }
            };
            ended = await session.WaitForEndAsync(drain.Token);
            endBehindData = ended || session.CloseReceived is not null;
        }

        var source = settings.Echo is null ? "server_stream" : "echo";
        IReadOnlyList<KeyValuePair<string, object?>> details =
        [
            new("source", source),
            new("readRateBytesPerSecond", settings.ReadRate),
            new("receiveBufferBytes", effectiveBuffer),
            new("requestedBytes", settings.ReadBytes),
            new("firstDataAfterSeconds", session.FirstDataAt?.TotalSeconds),
            new("slowSeconds", slowPhase.TotalSeconds),
            new("bytesReadSlowly", drainedFrom),
            new("endQueuedBehindData", endBehindData),
        ];
        var rate = Durations.FormatRate(settings.ReadRate);
        var read = Durations.FormatBytes(drainedFrom);
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

            if (endBehindData && session.DataBytes > drainedFrom)
            {
                var slowRead = Durations.FormatBytes(drainedFrom);
                return Result(Verdict.Fail,
                    $"A client reading slowly ({rate}) but steadily was cut within {Durations.Format(slowPhase)}, having read {slowRead}: " +
                    $"the end ({how}) was queued behind {Durations.FormatBytes(session.DataBytes - drainedFrom)} of data still on its way, so a slow user " +
                    "finds out late; whatever cut it judges slowness as death and needs a longer timeout.",
                    $"cut within {Durations.Format(slowPhase)} at {slowRead} read, {rate} (end found behind {Durations.FormatBytes(session.DataBytes - drainedFrom)} still queued); {session.PingsText()}");
            }

            return Result(Verdict.Fail,
                $"A client reading slowly ({rate}) but steadily was cut after {Durations.Format(cutAt)} ({how}), having read {read}: " +
                "users on slow links get disconnected; whatever cut it judges slowness as death and needs a longer timeout.",
                $"cut after {Durations.Format(cutAt)} ({how}) at {read} read, {rate}; {session.PingsText()}");
        }

        var held = slowPhase;
        session.OnData = null;
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

    // Sends the echo message until the echoes add up to what the check reads, a few frames per write, and never
    // more than MaxAhead of echo outstanding: a server that echoes into a slow reader stops reading, and a write
    // stuck behind it would hold the write lock that the pongs need (the proxy would then rightly judge the probe dead).
    // A write is never cancelled halfway (that would leave half a frame); only the waits between them are.
    private static async Task SendEchoesAsync(ProbeSession session, string echo, int wanted, TimeProvider time, CancellationToken token)
    {
        var frame = FrameWriter.Encode(Opcode.Text, Encoding.UTF8.GetBytes(echo));
        var payloadLength = Math.Max(1, Encoding.UTF8.GetByteCount(echo));
        var perBatch = Math.Max(1, MaxBatch / frame.Length);
        long sent = 0;
        while (sent < wanted && !token.IsCancellationRequested)
        {
            if (sent - session.DataBytes >= MaxAhead)
            {
                await Task.Delay(s_aheadPoll, time, token);
                continue;
            }

            var batch = new MemoryStream();
            for (var i = 0; i < perBatch && sent < wanted; i++, sent += payloadLength)
            {
                batch.Write(FrameWriter.Encode(Opcode.Text, Encoding.UTF8.GetBytes(echo)));
            }

            await session.Connection.Writer.SendRawAsync(batch.ToArray(), CancellationToken.None);
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
