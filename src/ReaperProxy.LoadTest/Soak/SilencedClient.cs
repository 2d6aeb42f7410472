using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>How a silenced client goes quiet.</summary>
internal enum SilenceMode
{
    /// <summary>It keeps reading (it sees the proxy's pings) but never answers again: a client whose application hung.</summary>
    Silent,

    /// <summary>It stops reading and sending altogether (its kernel still acknowledges): a frozen process.</summary>
    Frozen,
}

/// <summary>What happened to one silenced client.</summary>
/// <param name="Mode">How it went quiet.</param>
/// <param name="ReapSeconds">From its last byte sent to the end of its connection; null when it was never ended.</param>
/// <param name="End">What ended it (end of stream, reset, a Close frame, FIN or RST seen in TCP_INFO), or why it failed.</param>
/// <param name="PingsAfterSilence">The proxy's pings it saw after going quiet (silent mode only).</param>
internal sealed record SilencedOutcome(SilenceMode Mode, double? ReapSeconds, string End, int PingsAfterSilence);

/// <summary>
/// A raw client (RFC 6455 by hand) on the soak's <c>/ws</c> route that behaves for a while — echoes,
/// pongs to the proxy's pings — and then, at an instant it records (right after its last byte went
/// out), stops answering. The proxy must reap it within the reaping deadline counted from that instant.
/// </summary>
internal static class SilencedClient
{
    private const int SolTcp = 6;
    private const int TcpInfo = 11;
    private const byte Established = 1;

    public static async Task<SilencedOutcome> RunAsync(Uri target, IPAddress source, SilenceMode mode, TimeSpan live, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var sendGate = new SemaphoreSlim(1);
        var silent = false;
        long silencedAt = 0;
        long lastSentAt = 0;
        var pingsAfter = 0;
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            socket.Bind(new IPEndPoint(source, 0));
            await socket.ConnectAsync(IPAddress.Parse(target.Host), target.Port, cancellationToken);
            await RawWebSocket.ClientHandshakeAsync(socket, target, cancellationToken);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return new SilencedOutcome(mode, null, $"failed to connect: {ex.GetType().Name}: {ex.Message}", 0);
        }

        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var (opcode, length) = await RawWebSocket.ReadFrameAsync(socket, buffer, stopReading.Token);
                    if (opcode == RawWebSocket.Close)
                    {
                        ended.TrySetResult("a Close frame");
                        return;
                    }

                    if (opcode != RawWebSocket.Ping)
                    {
                        continue;
                    }

                    await sendGate.WaitAsync(CancellationToken.None);
                    try
                    {
                        if (Volatile.Read(ref silent))
                        {
                            pingsAfter++;
                        }
                        else
                        {
                            await RawWebSocket.SendAllAsync(socket, RawWebSocket.ControlFrame(RawWebSocket.Pong, buffer.AsSpan(0, length), mask: true), CancellationToken.None);
                            Volatile.Write(ref lastSentAt, Stopwatch.GetTimestamp());
                        }
                    }
                    finally
                    {
                        sendGate.Release();
                    }
                }
            }
            catch (OperationCanceledException) when (stopReading.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // Frozen: reads stop here; the end is watched in TCP_INFO.
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
            {
                ended.TrySetResult(ex is EndOfStreamException ? "end of stream" : ex is SocketException se ? $"socket {se.SocketErrorCode}" : ex.GetType().Name);
            }
        }, CancellationToken.None);

        // The live phase: a small message every 300 ms (echoed by the backend), pings answered.
        var clock = Stopwatch.StartNew();
        var key = RandomNumberGenerator.GetBytes(4);
        var message = RandomNumberGenerator.GetBytes(32);
        byte[] frame = [.. RawWebSocket.DataFrameHeader(message.Length, key), .. RawWebSocket.Mask(message, key)];
        try
        {
            while (clock.Elapsed < live)
            {
                await sendGate.WaitAsync(cancellationToken);
                try
                {
                    await RawWebSocket.SendAllAsync(socket, frame, cancellationToken);
                    Volatile.Write(ref lastSentAt, Stopwatch.GetTimestamp());
                }
                finally
                {
                    sendGate.Release();
                }

                await Task.Delay(300, cancellationToken);
            }

            // The instant of silence is the last byte sent (a message or a pong); under the send gate, so
            // that no pong can follow it.
            await sendGate.WaitAsync(cancellationToken);
            Volatile.Write(ref silent, true);
            silencedAt = Volatile.Read(ref lastSentAt);
            sendGate.Release();
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            await stopReading.CancelAsync();
            return new SilencedOutcome(mode, null, $"ended while live: {ex.GetType().Name}: {ex.Message}", 0);
        }

        if (ended.Task.IsCompleted)
        {
            return new SilencedOutcome(mode, null, $"ended while live: {await ended.Task}", 0);
        }

        if (mode == SilenceMode.Frozen)
        {
            await stopReading.CancelAsync();
        }

        // Wait for the end: the reader sees it (silent); a frozen client's kernel shows it in TCP_INFO
        // (FIN: CLOSE_WAIT; RST: CLOSE), even behind unread bytes.
        var info = new byte[232];
        var limit = silencedAt + (long)((bound + TimeSpan.FromSeconds(5)).TotalSeconds * Stopwatch.Frequency);
        string? end = null;
        while (Stopwatch.GetTimestamp() < limit && !cancellationToken.IsCancellationRequested)
        {
            if (ended.Task.IsCompleted)
            {
                end = await ended.Task;
                break;
            }

            if (mode == SilenceMode.Frozen && socket.GetRawSocketOption(SolTcp, TcpInfo, info) > 0 && info[0] != Established)
            {
                end = info[0] == 8 ? "FIN (TCP_INFO CLOSE_WAIT)" : $"TCP_INFO state {info[0]}";
                break;
            }

            await Task.Delay(10, CancellationToken.None);
        }

        var seconds = Stopwatch.GetElapsedTime(silencedAt).TotalSeconds;
        await stopReading.CancelAsync();
        socket.Close();
        await reader.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
        return end is null
            ? new SilencedOutcome(mode, null, $"still open {seconds:F1} s after going quiet", pingsAfter)
            : new SilencedOutcome(mode, Math.Round(seconds, 3), end, pingsAfter);
    }
}
