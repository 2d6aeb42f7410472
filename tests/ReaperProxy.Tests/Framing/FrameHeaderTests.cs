using System.Buffers.Binary;
using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

public class FrameHeaderTests
{
    private const uint MaskKey = 0x37FA213D;

    public static TheoryData<long, bool> LengthsAndMasking()
    {
        var data = new TheoryData<long, bool>();
        long[] lengths = [0, 1, 125, 126, 127, 65535, 65536, 1L << 32, (1L << 40) + 7, long.MaxValue];
        foreach (var length in lengths)
        {
            data.Add(length, false);
            data.Add(length, true);
        }

        return data;
    }

    public static TheoryData<byte> ReservedOpcodes() => [3, 4, 5, 6, 7, 11, 12, 13, 14, 15];

    public static TheoryData<byte> ControlOpcodes() => [WebSocketOpcode.Close, WebSocketOpcode.Ping, WebSocketOpcode.Pong];

    [Theory]
    [MemberData(nameof(LengthsAndMasking))]
    public void A_header_in_each_length_encoding_parses_to_its_length_and_header_size(long length, bool masked)
    {
        var bytes = WireFrame.Header(fin: true, rsv: 0, WebSocketOpcode.Binary, length, masked ? MaskKey : null);

        var status = FrameHeader.TryParse(bytes, out var header, out var error);

        Assert.Equal(HeaderStatus.Complete, status);
        Assert.Equal(FrameError.None, error);
        Assert.Equal(length, header.PayloadLength);
        var lengthBytes = length <= 125 ? 0 : length <= 65535 ? 2 : 8;
        Assert.Equal(2 + lengthBytes + (masked ? 4 : 0), header.HeaderLength);
        Assert.Equal(bytes.Length, header.HeaderLength);
        Assert.Equal(masked, header.Masked);
        Assert.Equal(masked ? MaskKey : 0u, header.MaskKey);
        Assert.Equal(WebSocketOpcode.Binary, header.Opcode);
        Assert.True(header.Fin);
        Assert.False(header.IsControl);
    }

    [Theory]
    [MemberData(nameof(LengthsAndMasking))]
    public void Every_truncation_of_a_valid_header_needs_more_bytes(long length, bool masked)
    {
        var bytes = WireFrame.Header(fin: true, rsv: 0, WebSocketOpcode.Text, length, masked ? MaskKey : null);

        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var status = FrameHeader.TryParse(bytes.AsSpan(0, cut), out _, out var error);
            Assert.True(status == HeaderStatus.NeedMore, $"{cut} of {bytes.Length} header bytes gave {status} ({error})");
            Assert.Equal(FrameError.None, error);
        }
    }

    [Fact]
    public void Bytes_after_the_header_are_not_part_of_it()
    {
        var frame = WireFrame.Binary(300, mask: MaskKey).ToBytes();

        var status = FrameHeader.TryParse(frame, out var header, out _);

        Assert.Equal(HeaderStatus.Complete, status);
        Assert.Equal(8, header.HeaderLength);
        Assert.Equal(300, header.PayloadLength);
        Assert.Equal(frame.Length, header.FrameLength);
    }

    [Fact]
    public void Fin_rsv_bits_and_opcode_are_read_from_the_first_byte()
    {
        // FIN clear, RSV1 and RSV3 set, text: 0b0101_0001.
        var status = FrameHeader.TryParse([0x51, 0x00], out var header, out _);

        Assert.Equal(HeaderStatus.Complete, status);
        Assert.False(header.Fin);
        Assert.Equal(0b101, header.Rsv);
        Assert.Equal(WebSocketOpcode.Text, header.Opcode);
        Assert.Equal(0, header.PayloadLength);
    }

    [Fact]
    public void A_length_written_in_a_longer_encoding_than_needed_is_taken_as_written()
    {
        // §5.2 asks senders for the minimal encoding; the proxy only forwards, so it stays tolerant.
        byte[] sixteenBitFive = [0x82, 126, 0x00, 0x05];
        byte[] sixtyFourBitFive = [0x82, 127, 0, 0, 0, 0, 0, 0, 0, 0x05];

        Assert.Equal(HeaderStatus.Complete, FrameHeader.TryParse(sixteenBitFive, out var a, out _));
        Assert.Equal(HeaderStatus.Complete, FrameHeader.TryParse(sixtyFourBitFive, out var b, out _));
        Assert.Equal((5L, 4), (a.PayloadLength, a.HeaderLength));
        Assert.Equal((5L, 10), (b.PayloadLength, b.HeaderLength));
    }

    [Theory]
    [MemberData(nameof(ControlOpcodes))]
    public void A_control_frame_of_exactly_125_bytes_is_valid(byte opcode)
    {
        var frame = new WireFrame(true, 0, opcode, new byte[125], MaskKey).ToBytes();

        var status = FrameHeader.TryParse(frame, out var header, out _);

        Assert.Equal(HeaderStatus.Complete, status);
        Assert.True(header.IsControl);
        Assert.Equal(125, header.PayloadLength);
        Assert.Equal(FrameHeader.MaxControlFrame - 8, header.FrameLength);
    }

    [Theory]
    [MemberData(nameof(ReservedOpcodes))]
    public void A_reserved_opcode_is_refused_from_the_first_byte(byte opcode)
    {
        foreach (var fin in new[] { true, false })
        {
            var header = WireFrame.Header(fin, rsv: 0, opcode, 10, MaskKey);

            for (var cut = 1; cut <= header.Length; cut++)
            {
                var status = FrameHeader.TryParse(header.AsSpan(0, cut), out _, out var error);
                Assert.Equal(HeaderStatus.Invalid, status);
                Assert.Equal(FrameError.ReservedOpcode, error);
            }
        }
    }

    [Theory]
    [MemberData(nameof(ControlOpcodes))]
    public void A_control_frame_without_fin_is_refused_from_the_first_byte(byte opcode)
    {
        var header = WireFrame.Header(fin: false, rsv: 0, opcode, 4, maskKey: null);

        for (var cut = 1; cut <= header.Length; cut++)
        {
            var status = FrameHeader.TryParse(header.AsSpan(0, cut), out _, out var error);
            Assert.Equal(HeaderStatus.Invalid, status);
            Assert.Equal(FrameError.FragmentedControlFrame, error);
        }
    }

    [Theory]
    [InlineData(WebSocketOpcode.Close, 126L, false)]
    [InlineData(WebSocketOpcode.Ping, 126L, true)]
    [InlineData(WebSocketOpcode.Pong, 65535L, false)]
    [InlineData(WebSocketOpcode.Ping, 65536L, true)]
    [InlineData(WebSocketOpcode.Close, 1L << 40, true)]
    public void A_control_frame_over_125_bytes_is_refused_from_the_second_byte(byte opcode, long length, bool masked)
    {
        var header = WireFrame.Header(fin: true, rsv: 0, opcode, length, masked ? MaskKey : null);

        Assert.Equal(HeaderStatus.NeedMore, FrameHeader.TryParse(header.AsSpan(0, 1), out _, out _));
        for (var cut = 2; cut <= header.Length; cut++)
        {
            var status = FrameHeader.TryParse(header.AsSpan(0, cut), out _, out var error);
            Assert.Equal(HeaderStatus.Invalid, status);
            Assert.Equal(FrameError.ControlFrameTooLong, error);
        }
    }

    [Theory]
    [InlineData(false, 0x80UL << 56)]
    [InlineData(true, 0x80UL << 56)]
    [InlineData(false, ulong.MaxValue)]
    [InlineData(true, (1UL << 63) + 5)]
    public void A_64_bit_length_with_the_top_bit_set_is_refused_from_its_first_byte(bool masked, ulong length)
    {
        var header = new byte[masked ? 14 : 10];
        header[0] = 0x82;
        header[1] = (byte)((masked ? 0x80 : 0) | 127);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(2), length);

        Assert.Equal(HeaderStatus.NeedMore, FrameHeader.TryParse(header.AsSpan(0, 1), out _, out _));
        Assert.Equal(HeaderStatus.NeedMore, FrameHeader.TryParse(header.AsSpan(0, 2), out _, out _));
        for (var cut = 3; cut <= header.Length; cut++)
        {
            var status = FrameHeader.TryParse(header.AsSpan(0, cut), out _, out var error);
            Assert.True(status == HeaderStatus.Invalid, $"{cut} bytes gave {status}");
            Assert.Equal(FrameError.LengthTopBitSet, error);
        }
    }

    [Fact]
    public void The_largest_64_bit_length_is_valid()
    {
        var header = WireFrame.Header(fin: true, rsv: 0, WebSocketOpcode.Binary, long.MaxValue, maskKey: null);

        Assert.Equal(HeaderStatus.Complete, FrameHeader.TryParse(header, out var parsed, out _));
        Assert.Equal(long.MaxValue, parsed.PayloadLength);
    }

    [Fact]
    public void A_masked_control_payload_is_copied_out_unmasked()
    {
        var payload = "hello, proxy"u8.ToArray();
        var frame = WireFrame.Ping(payload, MaskKey).ToBytes();
        Assert.Equal(HeaderStatus.Complete, FrameHeader.TryParse(frame, out var header, out _));

        var copy = new byte[FrameHeader.MaxControlPayload];
        var length = header.CopyPayload(frame, copy);

        Assert.Equal(payload, copy[..length]);
        Assert.NotEqual(payload, frame[6..]);
    }

    [Fact]
    public void An_unmasked_control_payload_is_copied_out_as_it_is()
    {
        var payload = "pong data"u8.ToArray();
        var frame = WireFrame.Pong(payload).ToBytes();
        Assert.Equal(HeaderStatus.Complete, FrameHeader.TryParse(frame, out var header, out _));

        var copy = new byte[FrameHeader.MaxControlPayload];
        var length = header.CopyPayload(frame, copy);

        Assert.Equal(payload, copy[..length]);
    }
}
