using System.Diagnostics;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using HdrHistogram;

namespace ReaperProxy.LoadTest;

/// <summary>
/// Open-loop echo at a fixed total rate over K connections. Message j (0, 1, 2, ...) is due at
/// <c>start + j / rate</c> and goes to connection <c>j mod K</c>, whether or not earlier echoes have
/// come back: the sender never waits for the target, so a slow target cannot slow the load down and
/// hide its own slowness (coordinated omission). Each echo's latency is taken from its message's
/// <em>intended</em> send time, so time a message spent waiting to be sent (the target stalled, its
/// socket buffer was full) counts. The latency from the actual send is reported beside it.
/// Echoes come back in order on a connection, so the n-th echo belongs to the n-th message.
/// Samples are those whose intended send time falls in the measured window (after the warm-up).
/// </summary>
internal static class RateClient
{
    // A target is said to keep up when it echoed at least this share of the asked rate in the window.
    private const double KeepUpShare = 0.97;
    private const long MaxMessages = 20_000_000;

    public static async Task<int> RunAsync(Options options)
    {
        var target = Net.LoopbackTarget(options);
        var connections = options.Int("connections", 16, max: 5000);
        var rate = options.Int("rate", 1000, max: 1_000_000);
        var size = options.Int("size", 64, max: 16 * 1024 * 1024);
        var duration = options.Duration("duration", TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10));
        var warmup = options.Duration("warmup", TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(2));
        var drain = options.Duration("drain", TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(1));
        var sources = options.Sources("source");
        var watched = ProcCpu.ParsePids(options.Get("watch-pid"));
        var total = (long)Math.Ceiling((warmup + duration).TotalSeconds * rate);
        if (total > MaxMessages)
        {
            throw new FormatException($"--rate {rate} over {(warmup + duration).TotalSeconds} s is {total} messages; at most {MaxMessages}");
        }

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var invokers = sources.Select(Net.CreateInvoker).ToArray();
        var sockets = new ClientWebSocket[connections];
        try
        {
            await Net.ConnectAllAsync(target, sockets, invokers, stop.Token);

            var ticksPerMessage = Stopwatch.Frequency / (double)rate;
            var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 20; // 50 ms for the loops to start
            var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
            var measureTo = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            long Intended(long j) => start + (long)(j * ticksPerMessage);

            var legs = new Leg[connections];
            for (var c = 0; c < connections; c++)
            {
                // Connection c carries messages c, c + K, c + 2K, ...
                var count = total <= c ? 0 : (total - 1 - c) / connections + 1;
                legs[c] = new Leg(c, count);
            }

            using var drained = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            var payload = new byte[size];
            Random.Shared.NextBytes(payload);
            var senders = legs.Select(leg => Task.Run(() => SendAsync(leg, sockets[leg.Index], payload, drained.Token))).ToArray();
            var receivers = legs.Select(leg => Task.Run(() => ReceiveAsync(leg, sockets[leg.Index], size, connections, Intended, measureFrom, measureTo, drained.Token))).ToArray();

            // The pacer: one thread walks the merged schedule and hands each due message to its
            // connection's sender. Several messages can be due at one wake-up; all are handed over.
            var cpuBefore = Array.Empty<double>();
            var cpuAfter = Array.Empty<double>();
            var pacer = new Thread(() =>
            {
                PreciseSleep.TightenTimerSlack();
                var measuring = false;
                for (var j = 0L; j < total && !stop.IsCancellationRequested; j++)
                {
                    var due = Intended(j);
                    if (!measuring && due >= measureFrom)
                    {
                        PreciseSleep.Until(measureFrom);
                        cpuBefore = watched.Select(ProcCpu.Seconds).ToArray();
                        measuring = true;
                    }

                    PreciseSleep.Until(due);
                    legs[j % connections].Due.Writer.TryWrite(j);
                }

                PreciseSleep.Until(measureTo);
                cpuAfter = watched.Select(ProcCpu.Seconds).ToArray();
                foreach (var leg in legs)
                {
                    leg.Due.Writer.TryComplete();
                }
            })
            { IsBackground = true, Name = "pacer" };
            pacer.Start();
            await Task.Run(pacer.Join);

            // A message not sent, or not echoed, within the drain time after the schedule ended is
            // unanswered: a stalled target ends the run instead of holding it.
            drained.CancelAfter(drain);
            await Task.WhenAll(senders.Concat(receivers));

            var corrected = new LongHistogram(TimeStamp.Hours(1), 3);
            var uncorrected = new LongHistogram(TimeStamp.Hours(1), 3);
            foreach (var leg in legs)
            {
                corrected.Add(leg.Corrected);
                uncorrected.Add(leg.Uncorrected);
            }

            var seconds = duration.TotalSeconds;
            var intendedInWindow = legs.Sum(l => l.IntendedInWindow);
            var answered = legs.Sum(l => l.AnsweredInWindow);
            var receivedInWindow = legs.Sum(l => l.ReceivedInWindow);
            var sentInWindow = legs.Sum(l => l.SentInWindow);
            var errors = legs.Sum(l => l.Errors);
            var achieved = receivedInWindow / seconds;
            var keptUp = achieved >= KeepUpShare * rate && answered == intendedInWindow && errors == 0;
            var maxLag = legs.Max(l => l.MaxSendLagTicks);
            var note = keptUp
                ? "kept up"
                : $"did not keep up: {achieved:F0} of {rate} msg/s echoed in the window, {intendedInWindow - answered} of {intendedInWindow} messages unanswered {drain.TotalSeconds:F0} s after the last send, {errors} errors, sends up to {Micros(maxLag) / 1000:F1} ms late";
            var result = new RateResult(
                Target: target.ToString(),
                Connections: connections,
                Size: size,
                AskedRate: rate,
                Seconds: Math.Round(seconds, 2),
                Intended: intendedInWindow,
                Sent: sentInWindow,
                Answered: answered,
                Unanswered: intendedInWindow - answered,
                AchievedRate: Math.Round(achieved, 1),
                SentRate: Math.Round(sentInWindow / seconds, 1),
                KeptUp: keptUp,
                Note: note,
                MaxSendLagUs: Micros(maxLag),
                P50Us: Micros(corrected, 50),
                P90Us: Micros(corrected, 90),
                P99Us: Micros(corrected, 99),
                P999Us: Micros(corrected, 99.9),
                MaxUs: corrected.TotalCount == 0 ? 0 : Micros(corrected.GetMaxValue()),
                UncorrectedP50Us: Micros(uncorrected, 50),
                UncorrectedP99Us: Micros(uncorrected, 99),
                UncorrectedP999Us: Micros(uncorrected, 99.9),
                Errors: errors,
                Watched: watched.Select((pid, i) => new WatchedCpu(
                    pid,
                    cpuAfter.Length > i && cpuBefore.Length > i ? Math.Round((cpuAfter[i] - cpuBefore[i]) / seconds * 100, 1) : double.NaN,
                    cpuAfter.Length > i && cpuBefore.Length > i && receivedInWindow > 0 ? Math.Round((cpuAfter[i] - cpuBefore[i]) * 1e6 / receivedInWindow, 2) : 0)).ToArray());
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.RateResult));

            await Net.CloseAllAsync(sockets);
            return errors == 0 ? 0 : 1;
        }
        finally
        {
            Net.DisposeAll(sockets, invokers);
        }
    }

    private static async Task SendAsync(Leg leg, ClientWebSocket socket, byte[] payload, CancellationToken cancellationToken)
    {
        var reader = leg.Due.Reader;
        var n = 0L;
        try
        {
            while (await reader.WaitToReadAsync(cancellationToken))
            {
                while (reader.TryRead(out _))
                {
                    Volatile.Write(ref leg.SentAt[n++], Stopwatch.GetTimestamp());
                    await socket.SendAsync(payload.AsMemory(), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            Interlocked.Increment(ref leg.Errors);
        }
    }

    private static async Task ReceiveAsync(Leg leg, ClientWebSocket socket, int size, int connections, Func<long, long> intended,
        long measureFrom, long measureTo, CancellationToken cancellationToken)
    {
        var buffer = new byte[size];
        try
        {
            for (var n = 0L; n < leg.Count; n++)
            {
                var got = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await socket.ReceiveAsync(buffer.AsMemory(got), cancellationToken);
                    got += result.Count;
                }
                while (!result.EndOfMessage && got < size && result.MessageType != WebSocketMessageType.Close);

                var now = Stopwatch.GetTimestamp();
                if (result.MessageType == WebSocketMessageType.Close || got != size || !result.EndOfMessage)
                {
                    Interlocked.Increment(ref leg.Errors);
                    return;
                }

                var due = intended(n * connections + leg.Index);
                var sentAt = Volatile.Read(ref leg.SentAt[n]);
                if (now >= measureFrom && now < measureTo)
                {
                    leg.ReceivedInWindow++;
                }

                if (due >= measureFrom && due < measureTo)
                {
                    leg.AnsweredInWindow++;
                    leg.Corrected.RecordValue(Math.Clamp(now - due, 0, leg.Corrected.HighestTrackableValue));
                    leg.Uncorrected.RecordValue(Math.Clamp(now - sentAt, 0, leg.Uncorrected.HighestTrackableValue));
                    leg.MaxSendLagTicks = Math.Max(leg.MaxSendLagTicks, sentAt - due);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The drain time is over: what did not come back is unanswered.
        }
        catch (Exception ex) when (ex is WebSocketException or IOException)
        {
            Interlocked.Increment(ref leg.Errors);
        }
        finally
        {
            for (var n = 0L; n < leg.Count; n++)
            {
                var due = intended(n * connections + leg.Index);
                if (due >= measureFrom && due < measureTo)
                {
                    leg.IntendedInWindow++;
                    var sentAt = Volatile.Read(ref leg.SentAt[n]);
                    if (sentAt != 0 && sentAt < measureTo)
                    {
                        leg.SentInWindow++;
                    }
                }
            }
        }
    }

    private static double Micros(long ticks) => Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, 1);

    private static double Micros(LongHistogram histogram, double percentile) =>
        histogram.TotalCount == 0 ? 0 : Micros(histogram.GetValueAtPercentile(percentile));

    /// <summary>One connection's schedule and results; its receiver is the only writer of the counters.</summary>
    private sealed class Leg(int index, long count)
    {
        public readonly int Index = index;
        public readonly long Count = count;
        public readonly long[] SentAt = new long[count];
        // Synchronous continuations: the pacer's TryWrite runs the waiting sender inline, so a message
        // leaves on the pacer's thread at its due time instead of after a hop through the thread pool
        // (about 100 µs here, more on a busy machine, all of it counted as latency).
        public readonly Channel<long> Due = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });
        public readonly LongHistogram Corrected = new(TimeStamp.Hours(1), 3);
        public readonly LongHistogram Uncorrected = new(TimeStamp.Hours(1), 3);
        public long IntendedInWindow;
        public long AnsweredInWindow;
        public long ReceivedInWindow;
        public long SentInWindow;
        public long MaxSendLagTicks;
        public int Errors;
    }
}

internal sealed record RateResult(
    string Target,
    int Connections,
    int Size,
    int AskedRate,
    double Seconds,
    long Intended,
    long Sent,
    long Answered,
    long Unanswered,
    double AchievedRate,
    double SentRate,
    bool KeptUp,
    string Note,
    double MaxSendLagUs,
    double P50Us,
    double P90Us,
    double P99Us,
    double P999Us,
    double MaxUs,
    double UncorrectedP50Us,
    double UncorrectedP99Us,
    double UncorrectedP999Us,
    int Errors,
    WatchedCpu[] Watched);
