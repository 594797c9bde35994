"""Synthetic personal data: children's names and school roll numbers.

Every name here is drawn at random from lists of common surnames and given names; none
belongs to a participant of the study. Ethnic-Korean (Chaoxianzu) children get Korean
surnames and Sino-Korean given names written in Chinese characters, Han children common Han
names. All draws are vectorised, so that a million rows take well under a second.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# Surnames, roughly in order of frequency (the draw weights fall with the rank).
HAN_SURNAMES = tuple(
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
KOREAN_SURNAMES = tuple("金李朴崔郑姜赵尹张林韩申吴徐权黄宋安柳洪全高文孙梁白许南沈卢河郭成车禹朱任罗辛玄方孔严元蔡千")

# Han given names are one or two characters drawn from gendered character lists.
HAN_GIVEN_CHARS = {
    0: tuple("浩宇轩子涵博文俊杰明辉鹏飞志强伟磊鑫睿泽天佳豪瑞霖晨阳思远一铭昊然凯永健峰亮"),
    1: tuple("欣怡梓萱雨桐诗涵佳琪雪婷慧敏静丽娜晓燕思彤可馨紫嫣语若曦妍悦心玥婉瑶月"),
}
# Chaoxianzu given names: Sino-Korean names as they are written in Chinese characters.
KOREAN_GIVEN_NAMES = {
    0: (
        "成浩", "哲洙", "永哲", "光洙", "东赫", "敏俊", "俊浩", "贤宇", "承宪", "在贤",
        "相旭", "正勋", "泰民", "英男", "龙洙", "成民", "志勋", "贤俊", "东旭", "明哲",
        "春日", "光日", "昌浩", "成哲", "宇镇", "胜利", "永吉", "哲民", "俊英", "东日",
    ),
    1: (
        "美玲", "惠珍", "秀贤", "恩惠", "英爱", "顺姬", "明花", "春花", "美娜", "智恩",
        "秀英", "敏智", "贤珠", "丽花", "英姬", "玉珠", "美善", "贞淑", "惠英", "善花",
        "银花", "香兰", "京花", "恩英", "瑞贤", "多恩", "叙妍", "智媛", "佳恩", "海兰",
    ),
}


def _zipf_weights(n: int) -> np.ndarray:
    """Draw weights that fall with the rank, as surname frequencies do."""
    w = 1.0 / np.arange(1, n + 1) ** 0.8
    return w / w.sum()


def _pick(rng: np.random.Generator, pool: tuple[str, ...], n: int, weighted: bool = False) -> pl.Series:
    """`n` draws from `pool` (weighted by rank, or uniform)."""
    index = rng.choice(len(pool), n, p=_zipf_weights(len(pool))) if weighted else rng.integers(0, len(pool), n)
    return pl.Series(pool, dtype=pl.String).gather(index)


def draw_student_names(
    rng: np.random.Generator, korean: np.ndarray, girl: np.ndarray
) -> pl.Series:
    """One synthetic name per child: a Korean or Han surname and a gendered given name
    (Han given names of one or two characters)."""
    n = len(korean)
    frame = pl.DataFrame({
        "korean": korean == 1,
        "girl": girl == 1,
        "one_char": rng.random(n) < 0.2,
        "han_surname": _pick(rng, HAN_SURNAMES, n, weighted=True),
        "kor_surname": _pick(rng, KOREAN_SURNAMES, n, weighted=True),
        **{f"han_{k}_{sex}": _pick(rng, HAN_GIVEN_CHARS[sex], n) for sex in (0, 1) for k in (1, 2)},
        **{f"kor_{sex}": _pick(rng, KOREAN_GIVEN_NAMES[sex], n) for sex in (0, 1)},
    })

    def by_sex(column: str) -> pl.Expr:
        return pl.when(pl.col("girl")).then(pl.col(f"{column}_1")).otherwise(pl.col(f"{column}_0"))

    han_given = pl.when(pl.col("one_char")).then(by_sex("han_1")).otherwise(
        pl.concat_str(by_sex("han_1"), by_sex("han_2"))
    )
    return frame.select(
        pl.when(pl.col("korean"))
        .then(pl.concat_str(pl.col("kor_surname"), by_sex("kor")))
        .otherwise(pl.concat_str(pl.col("han_surname"), han_given))
        .alias("student_name")
    ).to_series()


def assign_roll_numbers(
    school_no: np.ndarray, entry_year: np.ndarray, class_no: np.ndarray, seat: np.ndarray
) -> pl.Series:
    """School roll numbers: entry year, school, class and seat, e.g. `2018030712`."""
    frame = pl.DataFrame(
        {"year": entry_year, "school": school_no, "class": class_no, "seat": seat}
    )
    return frame.select(
        pl.concat_str(
            pl.col("year").cast(pl.String),
            pl.col("school").cast(pl.String).str.zfill(2),
            pl.col("class").cast(pl.String).str.zfill(2),
            pl.col("seat").cast(pl.String).str.zfill(2),
        ).alias("student_no")
    ).to_series()


_DIGITS = "零一二三四五六七八九"
_UNITS = ((10_000, "万"), (1_000, "千"), (100, "百"), (10, "十"))


def chinese_numeral(n: int) -> str:
    """A positive integer below 100,000,000 in Chinese characters: 7 -> 七, 11 -> 十一,
    105 -> 一百零五."""
    if not 0 < n < 100_000_000:
        raise ValueError(f"{n} is outside 1..99,999,999")
    if n >= 10_000:
        high, low = divmod(n, 10_000)
        rest = chinese_numeral(low) if low else ""
        return chinese_numeral(high) + "万" + ("零" if 0 < low < 1_000 else "") + rest
    out, zero_pending = "", False
    for value, unit in _UNITS[1:]:
        digit, n = divmod(n, value)
        if digit:
            out += ("零" if zero_pending else "") + _DIGITS[digit] + unit
            zero_pending = False
        elif out:
            zero_pending = True
    if n:
        out += ("零" if zero_pending else "") + _DIGITS[n]
    return out[1:] if out.startswith("一十") else out


def school_name(index: int, school_type: int, school_level: int, per_site: int) -> str:
    """A fictional school of Hunchun for the `index`th school (0-based) of a wave whose
    sites each hold `per_site` schools: ethnic-Korean (type 1) primary or secondary schools
    and numbered Han secondary schools."""
    site, position = divmod(index, per_site)
    if school_type == 1:
        ordinal = site + (7 if school_level == 1 else 6)
        kind = "朝鲜族小学" if school_level == 1 else "朝鲜族中学"
    else:
        ordinal = 2 * site + 11 + 3 * (position % 2 == 1)
        kind = "小学" if school_level == 1 else "中学"
    return f"珲春市第{chinese_numeral(ordinal)}{kind}"
