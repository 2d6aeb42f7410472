using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest;

/// <summary>
/// N idle, live WebSockets from one source address: each keeps a receive pending (so ClientWebSocket
/// answers the proxy's pings) and sends nothing. A connection that ends before the close phase was cut
/// by someone else (a reap, a timeout): it is counted with its close status.
/// </summary>
internal static class IdleClient
{
    public static async Task<int> RunAsync(Options options)
    {
        var target = Net.LoopbackTarget(options);
        var count = options.Int("count", 1000, max: 19_000);
        var source = options.Sources("source")[0];
        var hold = options.Duration("duration", TimeSpan.FromSeconds(120));
        var concurrency = options.Int("connect-concurrency", 50, max: 1000);
        var connectTimeout = options.Duration("connect-timeout", TimeSpan.FromSeconds(60));
        var readyFile = options.Get("ready-file");

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var invoker = Net.CreateInvoker(source);

        var sockets = new ClientWebSocket?[count];
        var receives = new Task[count];
        var earlyCloses = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var connectErrors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var closing = 0;
        var unexpectedMessages = 0L;
        var scratch = new byte[256]; // shared: idle connections receive no data

        var started = Stopwatch.GetTimestamp();
        using (var gate = new SemaphoreSlim(concurrency))
        using (var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            connectDeadline.CancelAfter(connectTimeout);
            var connects = new Task[count];
            for (var i = 0; i < count; i++)
            {
                var index = i;
                connects[i] = Task.Run(async () =>
                {
                    await gate.WaitAsync(connectDeadline.Token).ConfigureAwait(false);
                    var socket = Net.NewClient();
                    try
                    {
                        await socket.ConnectAsync(target, invoker, connectDeadline.Token).ConfigureAwait(false);
                        sockets[index] = socket;
                        receives[index] = ReceiveUntilClosedAsync(socket);
                    }
                    catch (Exception ex)
                    {
                        socket.Dispose();
                        connectErrors.AddOrUpdate(Describe(ex), 1, (_, n) => n + 1);
                    }
                    finally
                    {
                        gate.Release();
                    }
                });
            }

            try
            {
                await Task.WhenAll(connects);
            }
            catch (OperationCanceledException)
            {
                // The connect deadline or a signal: the failures are counted below.
            }
        }

        var connectSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var connected = sockets.Count(s => s is not null);
        var failed = count - connected;
        Console.Error.WriteLine($"idle {source}: {connected}/{count} connected in {connectSeconds:F1}s");
        if (readyFile is not null)
        {
            await File.WriteAllTextAsync(readyFile, $"{connected} {failed}\n");
        }

        try
        {
            await Task.Delay(hold, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // Stopped early by a signal.
        }

        var stillOpen = sockets.Count(s => s is { State: WebSocketState.Open });
        Volatile.Write(ref closing, 1);

        // Close phase: a normal closing handshake on each connection, bounded in time.
        var closedCleanly = 0;
        var closeErrors = 0;
        using (var gate = new SemaphoreSlim(200))
        using (var closeDeadline = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            var closes = sockets.Where(s => s is { State: WebSocketState.Open }).Select(async socket =>
            {
                try
                {
                    await gate.WaitAsync(closeDeadline.Token).ConfigureAwait(false);
                    try
                    {
                        await socket!.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", closeDeadline.Token).ConfigureAwait(false);
                        Interlocked.Increment(ref closedCleanly);
                    }
                    finally
                    {
                        gate.Release();
                    }
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref closeErrors);
                }
            }).ToArray();
            await Task.WhenAll(closes);
        }

        foreach (var socket in sockets)
        {
            socket?.Dispose();
        }

        var early = earlyCloses.Values.Sum();
        var result = new IdleResult(
            Source: source.ToString(),
            Target: target.ToString(),
            Requested: count,
            Connected: connected,
            Failed: failed,
            ConnectSeconds: Math.Round(connectSeconds, 2),
            HoldSeconds: hold.TotalSeconds,
            OpenAtEnd: stillOpen,
            ClosedEarly: early,
            EarlyCloseReasons: new Dictionary<string, int>(earlyCloses, StringComparer.Ordinal),
            ConnectErrors: new Dictionary<string, int>(connectErrors, StringComparer.Ordinal),
            UnexpectedMessages: Interlocked.Read(ref unexpectedMessages),
            ClosedCleanly: closedCleanly,
            CloseErrors: closeErrors);
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.IdleResult));
        return failed == 0 && early == 0 ? 0 : 1;

        async Task ReceiveUntilClosedAsync(ClientWebSocket socket)
        {
            await Task.Yield();
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveAsync(scratch.AsMemory(), CancellationToken.None).ConfigureAwait(false);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        if (Volatile.Read(ref closing) == 0)
                        {
                            var reason = $"close {(int?)socket.CloseStatus} {socket.CloseStatusDescription}";
                            earlyCloses.AddOrUpdate(reason, 1, (_, n) => n + 1);
                        }

                        return;
                    }

                    Interlocked.Increment(ref unexpectedMessages);
                }
            }
            catch (Exception ex)
            {
                if (Volatile.Read(ref closing) == 0)
                {
                    earlyCloses.AddOrUpdate(Describe(ex), 1, (_, n) => n + 1);
                }
            }
        }
    }

    private static string Describe(Exception ex) => ex switch
    {
        WebSocketException ws => $"{ex.GetType().Name}: {ws.WebSocketErrorCode}",
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}

internal sealed record IdleResult(
    string Source,
    string Target,
    int Requested,
    int Connected,
    int Failed,
    double ConnectSeconds,
    double HoldSeconds,
    int OpenAtEnd,
    int ClosedEarly,
    Dictionary<string, int> EarlyCloseReasons,
    Dictionary<string, int> ConnectErrors,
    long UnexpectedMessages,
    int ClosedCleanly,
    int CloseErrors);
