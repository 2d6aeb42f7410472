using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using ReaperProxy.Configuration;
using ReaperProxy.Relay;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// DESIGN.md pitfall 1: a read left pending on Kestrel's stream breaks the next request on the same
/// HTTP/2 connection, so Dispose cancels the relay's inner read and waits for it. A ValueTask may be
/// awaited (its result taken) once only: a pooled source may already serve another read afterwards.
/// </summary>
public class RelayConnectionDisposeTests
{
    [Fact]
    public async Task Dispose_with_a_read_pending_cancels_the_inner_read_and_takes_its_result_once()
    {
        // Dispose's drain and the pending read's continuation race to take the inner result; repeat the
        // scenario so that an interleaving where both take it shows up on every run, not now and then.
        using var settings = new ReaperSettingsMonitor(new ConfigurationBuilder().Build());
        var takenTwice = 0;
        const int Rounds = 100;
        for (var round = 0; round < Rounds; round++)
        {
            var inner = new OneShotReadStream();
            var relay = new RelayConnection(1, new DefaultHttpContext(), "route", "cluster", null, settings, TimeProvider.System, NullLogger.Instance);
            relay.Attach(inner, "backend");
            var pending = relay.ReadAsync(Memory<byte>.Empty).AsTask();
            Assert.True(inner.ReadIssued);

            relay.Dispose();

            // The caller's read ends (cancelled), whoever took the inner result.
            await Assert.ThrowsAnyAsync<Exception>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(inner.Cancelled, "the inner read was not cancelled");
            Assert.Equal(1, inner.ReadsIssued);
            if (inner.ResultTakenTimes != 1)
            {
                takenTwice++;
            }
        }

        Assert.True(takenTwice == 0, $"the inner read's result was taken more than once in {takenTwice} of {Rounds} rounds");
    }

    /// <summary>A stream whose one read is a ValueTask over a source that counts GetResult calls.</summary>
    private sealed class OneShotReadStream : Stream, IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;
        private int _resultTaken;
        private int _readsIssued;

        public bool ReadIssued => ReadsIssued > 0;

        public int ReadsIssued => Volatile.Read(ref _readsIssued);

        public bool Cancelled { get; private set; }

        public int ResultTakenTimes => Volatile.Read(ref _resultTaken);

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _readsIssued) > 1)
            {
                // After Dispose nothing may read again (DESIGN.md pitfall 1).
                throw new InvalidOperationException("Reading is already in progress.");
            }

            cancellationToken.Register(() =>
            {
                Cancelled = true;
                _core.SetException(new OperationCanceledException(cancellationToken));
            });
            return new ValueTask<int>(this, _core.Version);
        }

        int IValueTaskSource<int>.GetResult(short token)
        {
            Interlocked.Increment(ref _resultTaken);
            return _core.GetResult(token);
        }

        ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
