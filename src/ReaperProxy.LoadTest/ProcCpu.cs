using System.Globalization;

namespace ReaperProxy.LoadTest;

/// <summary>CPU time of a process from /proc/PID/stat (utime + stime).</summary>
internal static class ProcCpu
{
    // USER_HZ: 100 on Linux for /proc/PID/stat, whatever the kernel's internal tick rate.
    private const double TicksPerSecond = 100;

    public static int[] ParsePids(string? text) =>
        string.IsNullOrWhiteSpace(text)
            ? []
            : text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) && pid > 0
                    ? pid
                    : throw new FormatException($"--watch-pid: '{p}' is not a process id"))
                .ToArray();

    /// <summary>utime + stime in seconds; NaN when the process is gone.</summary>
    public static double Seconds(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return double.NaN;
        }

        // The command name (field 2) is in parentheses and may contain spaces: parse after its end.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }
}
