using System.Diagnostics;
using System.Net.WebSockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest;

/// <summary>
/// Closed-loop echo: K connections, each sends one binary message, waits for the whole echo, repeats.
/// Messages/s and round-trip percentiles are taken over the measured window only (after the warm-up).
/// </summary>
internal static class EchoClient
{
    private const int Warmup = 0;
    private const int Measure = 1;
    private const int Done = 2;

    public static async Task<int> RunAsync(Options options)
    {
        var target = Net.LoopbackTarget(options);
        var connections = options.Int("connections", 1, max: 5000);
        var size = options.Int("size", 64, max: 16 * 1024 * 1024);
        var duration = options.Duration("duration", TimeSpan.FromSeconds(20), TimeSpan.FromMinutes(10));
        var warmup = options.Duration("warmup", TimeSpan.FromSeconds(3), TimeSpan.FromMinutes(2));
        var sources = options.Sources("source");
        var watched = ProcCpu.ParsePids(options.Get("watch-pid"));

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var invokers = sources.Select(Net.CreateInvoker).ToArray();
        var sockets = new ClientWebSocket[connections];
        try
        {
            await Net.ConnectAllAsync(target, sockets, invokers, stop.Token);

            var phase = Warmup;
            var perConnection = new List<long>[connections];
            var errors = 0;
            var loops = Enumerable.Range(0, connections).Select(i => Task.Run(async () =>
            {
                var latencies = perConnection[i] = new List<long>(capacity: 1 << 16);
                var payload = new byte[size];
                Random.Shared.NextBytes(payload);
                var received = new byte[size];
                var socket = sockets[i];
                try
                {
                    while (Volatile.Read(ref phase) != Done && !stop.IsCancellationRequested)
                    {
                        var measured = Volatile.Read(ref phase) == Measure;
                        var t0 = Stopwatch.GetTimestamp();
                        await socket.SendAsync(payload.AsMemory(), WebSocketMessageType.Binary, endOfMessage: true, stop.Token);
                        var got = 0;
                        ValueWebSocketReceiveResult result;
                        do
                        {
                            result = await socket.ReceiveAsync(received.AsMemory(got), stop.Token);
                            got += result.Count;
                        }
                        while (!result.EndOfMessage && got < size);

                        var t1 = Stopwatch.GetTimestamp();
                        if (result.MessageType == WebSocketMessageType.Close || got != size || !result.EndOfMessage ||
                            received[0] != payload[0] || received[size - 1] != payload[size - 1])
                        {
                            Interlocked.Increment(ref errors);
                            return;
                        }

                        if (measured && Volatile.Read(ref phase) == Measure)
                        {
                            latencies.Add(t1 - t0);
                        }
                    }
                }
                catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
                {
                    Interlocked.Increment(ref errors);
                }
            })).ToArray();

            await Task.Delay(warmup, stop.Token);
            var cpuBefore = watched.Select(ProcCpu.Seconds).ToArray();
            var measureStart = Stopwatch.GetTimestamp();
            Volatile.Write(ref phase, Measure);
            await Task.Delay(duration, stop.Token);
            Volatile.Write(ref phase, Done);
            var measuredSeconds = Stopwatch.GetElapsedTime(measureStart).TotalSeconds;
            var cpuAfter = watched.Select(ProcCpu.Seconds).ToArray();
            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30));

            var all = perConnection.Where(l => l is not null).SelectMany(l => l).ToArray();
            Array.Sort(all);
            var result = new EchoResult(
                Target: target.ToString(),
                Connections: connections,
                Size: size,
                Seconds: Math.Round(measuredSeconds, 2),
                Messages: all.Length,
                MessagesPerSec: Math.Round(all.Length / measuredSeconds, 1),
                MiBPerSecEachWay: Math.Round(all.Length * (double)size / measuredSeconds / (1024 * 1024), 2),
                P50Us: Micros(Percentile(all, 0.50)),
                P90Us: Micros(Percentile(all, 0.90)),
                P99Us: Micros(Percentile(all, 0.99)),
                MaxUs: Micros(all.Length > 0 ? all[^1] : 0),
                Errors: errors,
                Watched: watched.Select((pid, i) => new WatchedCpu(
                    pid,
                    Math.Round((cpuAfter[i] - cpuBefore[i]) / measuredSeconds * 100, 1),
                    all.Length > 0 ? Math.Round((cpuAfter[i] - cpuBefore[i]) * 1e6 / all.Length, 2) : 0)).ToArray());
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.EchoResult));

            await Net.CloseAllAsync(sockets);
            return errors == 0 ? 0 : 1;
        }
        finally
        {
            Net.DisposeAll(sockets, invokers);
        }
    }

    private static long Percentile(long[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static double Micros(long ticks) => Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, 1);
}

internal sealed record EchoResult(
    string Target,
    int Connections,
    int Size,
    double Seconds,
    long Messages,
    double MessagesPerSec,
    double MiBPerSecEachWay,
    double P50Us,
    double P90Us,
    double P99Us,
    double MaxUs,
    int Errors,
    WatchedCpu[] Watched);

/// <summary>A watched process's CPU (utime+stime) over the measured window: % of one core, and µs per echoed message.</summary>
internal sealed record WatchedCpu(int Pid, double CpuPctOfCore, double CpuUsPerMessage);
